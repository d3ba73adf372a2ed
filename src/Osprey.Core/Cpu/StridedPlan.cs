using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

/// <summary>
/// Walks several same-shaped strided tensors together, one inner row at a time. Dimensions of size 1
/// are dropped and neighbours that are contiguous in every operand are merged, so a dense tensor is a
/// single row. Kernels then loop over rows: <c>for (r...) { plan.RowOffsets(r, offs); inner loop }</c>.
/// </summary>
public sealed class StridedPlan
{
    private readonly int[] _outer;        // outer dimension sizes (merged)
    private readonly long[][] _outerStr;  // per operand, stride of each outer dimension

    private StridedPlan(int[] outer, long[][] outerStr, int inner, long[] innerStr, long rows)
    {
        _outer = outer;
        _outerStr = outerStr;
        Inner = inner;
        InnerStrides = innerStr;
        Rows = rows;
    }

    /// <summary>Elements in one row.</summary>
    public int Inner { get; }

    /// <summary>Per operand, the stride (elements) between consecutive elements of a row.</summary>
    public long[] InnerStrides { get; }

    public long Rows { get; }

    public int Operands => InnerStrides.Length;

    public static StridedPlan For(params Tensor[] tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var strides = new long[tensors.Length][];
        for (int i = 0; i < tensors.Length; i++) strides[i] = tensors[i].Strides.ToArray();
        return For(tensors[0].Shape, strides);
    }

    public static StridedPlan For(Shape shape, long[][] strides)
    {
        int k = strides.Length;
        var dims = new List<int>();
        var str = new List<long[]>();
        for (int d = 0; d < shape.Rank; d++)
        {
            if (shape[d] == 1) continue;
            var s = new long[k];
            for (int j = 0; j < k; j++) s[j] = strides[j][d];
            if (dims.Count > 0)
            {
                var prev = str[^1];
                bool merge = true;
                for (int j = 0; j < k; j++) merge &= prev[j] == s[j] * shape[d];
                if (merge)
                {
                    dims[^1] *= shape[d];
                    str[^1] = s;
                    continue;
                }
            }
            dims.Add(shape[d]);
            str.Add(s);
        }
        if (shape.Numel == 0) return new StridedPlan([], Enumerable.Range(0, k).Select(_ => Array.Empty<long>()).ToArray(), 0, new long[k], 0);
        if (dims.Count == 0) { dims.Add(1); str.Add(new long[k]); }
        int inner = dims[^1];
        long[] innerStr = str[^1];
        int outerRank = dims.Count - 1;
        var outer = dims.Take(outerRank).ToArray();
        var outerStr = new long[k][];
        for (int j = 0; j < k; j++)
        {
            outerStr[j] = new long[outerRank];
            for (int d = 0; d < outerRank; d++) outerStr[j][d] = str[d][j];
        }
        long rows = 1;
        foreach (int d in outer) rows *= d;
        return new StridedPlan(outer, outerStr, inner, innerStr, rows);
    }

    /// <summary>Element offsets (relative to each operand's first element) of row <paramref name="row"/>'s start.</summary>
    public void RowOffsets(long row, Span<long> offsets)
    {
        offsets.Clear();
        for (int d = _outer.Length - 1; d >= 0 && row > 0; d--)
        {
            long idx = row % _outer[d];
            row /= _outer[d];
            for (int j = 0; j < offsets.Length; j++) offsets[j] += idx * _outerStr[j][d];
        }
    }
}
