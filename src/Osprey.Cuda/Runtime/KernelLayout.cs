using System.Runtime.InteropServices;
using Osprey.Core;
using Osprey.Core.Tensors;

namespace Osprey.Cuda.Runtime;

/// <summary>
/// The strided walk a kernel takes over up to four same-shaped operands, passed by value (the struct
/// Layout of Kernels/common.cuh, field for field). Built with dimensions of size 1 dropped and
/// neighbouring dimensions merged wherever every operand is contiguous across them, so a dense tensor
/// becomes rank 1 and most broadcasts rank 2 or 3.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct KernelLayout
{
    public const int MaxRank = 8;
    public const int MaxOperands = 4;

    public int Rank;

    /// <summary>1 when the walk covers fewer than 2^32 elements, so kernels can do index arithmetic in 32 bits.</summary>
    public int Small;
    public fixed long Shape[MaxRank];
    public fixed long Strides[MaxOperands * MaxRank];

    public readonly long Stride(int operand, int dim) => Strides[operand * MaxRank + dim];

    /// <summary>True when every operand walks memory contiguously (stride 1), i.e. rank 0 or a single unit-stride dimension.</summary>
    public readonly bool IsContiguous(int operands)
    {
        if (Rank == 0) return true;
        if (Rank != 1) return false;
        for (int j = 0; j < operands; j++) if (Strides[j * MaxRank] != 1) return false;
        return true;
    }

    /// <summary>The layout of the given tensors (which must share a shape) as the kernel walks them.</summary>
    /// <summary>Element-wise kernels address every operand through the layout, so the walk may follow t0's memory order.</summary>
    public static KernelLayout Of(string op, Tensor t0) => Build(op, t0.Shape.Span, [t0.Strides.ToArray()], anyOrder: true);
    public static KernelLayout Of(string op, Tensor t0, Tensor t1) => Build(op, t0.Shape.Span, [t0.Strides.ToArray(), t1.Strides.ToArray()], anyOrder: true);
    public static KernelLayout Of(string op, Tensor t0, Tensor t1, Tensor t2) =>
        Build(op, t0.Shape.Span, [t0.Strides.ToArray(), t1.Strides.ToArray(), t2.Strides.ToArray()], anyOrder: true);
    public static KernelLayout Of(string op, Tensor t0, Tensor t1, Tensor t2, Tensor t3) =>
        Build(op, t0.Shape.Span, [t0.Strides.ToArray(), t1.Strides.ToArray(), t2.Strides.ToArray(), t3.Strides.ToArray()], anyOrder: true);

    /// <summary>Builds a layout from a shape and per-operand strides (elements), merging what can be merged. With
    /// <paramref name="anyOrder"/> the dimensions are walked in the first operand's memory order; only for kernels that address
    /// every operand through the layout. Without it the walk is the logical (row-major) order, for kernels that also index
    /// something by the linear position itself (scatter_add reads gy[i] and index[i], reductions write y[i]).</summary>
    public static KernelLayout Build(string op, ReadOnlySpan<int> shape, long[][] strides, bool anyOrder = false)
    {
        int k = strides.Length;
        if (k > MaxOperands) throw new ArgumentOutOfRangeException(nameof(strides), $"{op}: at most {MaxOperands} operands");
        Span<long> dims = stackalloc long[shape.Length];
        Span<long> str = stackalloc long[shape.Length * MaxOperands];
        // walk the dimensions in the order of the first operand's (the output's) strides, largest first: element-wise work
        // is order-free, and a dense channels-last tensor [N, C, H, W] (strides HWC, 1, WC, C) then merges into one run
        // like a contiguous one does (a stable insertion sort: equal strides keep their order; contiguous is unchanged)
        Span<int> order = stackalloc int[shape.Length];
        for (int d = 0; d < order.Length; d++) order[d] = d;
        for (int i = 1; anyOrder && i < order.Length; i++)
        {
            int v = order[i], j = i - 1;
            long sv = Math.Abs(strides[0][v]);
            while (j >= 0 && Math.Abs(strides[0][order[j]]) < sv)
            {
                order[j + 1] = order[j];
                j--;
            }
            order[j + 1] = v;
        }
        int r = 0;
        foreach (int d in order)
        {
            if (shape[d] == 1) continue;
            if (r > 0)
            {
                bool merge = true;
                for (int j = 0; j < k; j++) merge &= str[(r - 1) * MaxOperands + j] == strides[j][d] * shape[d];
                if (merge)
                {
                    dims[r - 1] *= shape[d];
                    for (int j = 0; j < k; j++) str[(r - 1) * MaxOperands + j] = strides[j][d];
                    continue;
                }
            }
            dims[r] = shape[d];
            for (int j = 0; j < k; j++) str[r * MaxOperands + j] = strides[j][d];
            r++;
        }
        if (r > MaxRank)
            OpArgumentException.Throw(op, $"the CUDA backend walks at most {MaxRank} non-mergeable dimensions; shape [{string.Join(", ", shape.ToArray())}] needs {r}");
        long numel = 1;
        for (int d = 0; d < r; d++) numel *= dims[d];
        var l = new KernelLayout { Rank = r, Small = numel <= uint.MaxValue ? 1 : 0 };
        for (int d = 0; d < r; d++)
        {
            l.Shape[d] = dims[d];
            for (int j = 0; j < k; j++) l.Strides[j * MaxRank + d] = str[d * MaxOperands + j];
        }
        return l;
    }
}
