using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

public sealed partial class CpuBackend
{
    public void TopK(Tensor x, int k, int axis, bool largest, Tensor values, Tensor indices)
    {
        switch (x.DType)
        {
            case DType.Float32: TopKRun<float, float>(x, k, axis, largest, values, indices); break;
            case DType.Float16: TopKRun<Half, float>(x, k, axis, largest, values, indices); break;
            case DType.BFloat16: TopKRun<BFloat16, float>(x, k, axis, largest, values, indices); break;
            case DType.Int8: TopKRun<sbyte, long>(x, k, axis, largest, values, indices); break;
            case DType.UInt8: TopKRun<byte, long>(x, k, axis, largest, values, indices); break;
            case DType.Int32: TopKRun<int, long>(x, k, axis, largest, values, indices); break;
            case DType.Int64: TopKRun<long, long>(x, k, axis, largest, values, indices); break;
            default: throw new OpArgumentException($"topk: not defined for {x.DType.Name()} {x.Shape}");
        }
    }

    /// <summary>
    /// Whether (a, ia) sorts before (b, ib): larger first (smaller first when !largest), NaN counted as
    /// the largest value (torch's order), equal values by lower index.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool TopKBefore<TK>(TK a, int ia, TK b, int ib, bool largest) where TK : INumber<TK>
    {
        bool an = TK.IsNaN(a), bn = TK.IsNaN(b);
        if (an || bn)
        {
            if (an && bn) return ia < ib;
            return largest ? an : bn;
        }
        if (a == b) return ia < ib;
        return largest ? a > b : a < b;
    }

    /// <summary>
    /// Keeps a sorted buffer of the best k (key, index) pairs per line, inserting by binary search.
    /// Expected cost is about n + k log k per line on unordered data; already-sorted input in the
    /// selected direction costs up to n * k moves.
    /// </summary>
    private static void TopKRun<TS, TK>(Tensor x, int k, int axis, bool largest, Tensor values, Tensor indices)
        where TS : unmanaged where TK : unmanaged, INumber<TK>
    {
        int n = x.Shape[axis];
        long inner = 1, outer = 1;
        for (int d = axis + 1; d < x.Rank; d++) inner *= x.Shape[d];
        for (int d = 0; d < axis; d++) outer *= x.Shape[d];
        if (k == 0) return;
        Parallel2.For(outer * inner, n, (lo, hi) =>
        {
            var xs = Data<TS>(x);
            var vs = Data<TS>(values);
            var ids = Data<long>(indices);
            TK[] keys = ArrayPool<TK>.Shared.Rent(k);
            int[] idx = ArrayPool<int>.Shared.Rent(k);
            try
            {
                for (long u = lo; u < hi; u++)
                {
                    long o = u / inner, j = u % inner;
                    long start = o * n * inner + j;
                    int count = 0;
                    for (int i = 0; i < n; i++)
                    {
                        TK v = Elem.Convert<TS, TK>(xs[(int)(start + i * inner)]);
                        if (count == k && !TopKBefore(v, i, keys[k - 1], idx[k - 1], largest)) continue;
                        int loPos = 0, hiPos = count;
                        while (loPos < hiPos)
                        {
                            int mid = (loPos + hiPos) >> 1;
                            if (TopKBefore(v, i, keys[mid], idx[mid], largest)) hiPos = mid;
                            else loPos = mid + 1;
                        }
                        int last = Math.Min(count, k - 1);
                        Array.Copy(keys, loPos, keys, loPos + 1, last - loPos);
                        Array.Copy(idx, loPos, idx, loPos + 1, last - loPos);
                        keys[loPos] = v;
                        idx[loPos] = i;
                        if (count < k) count++;
                    }
                    long ostart = o * k * inner + j;
                    for (int t = 0; t < k; t++)
                    {
                        vs[(int)(ostart + t * inner)] = xs[(int)(start + idx[t] * inner)];
                        ids[(int)(ostart + t * inner)] = idx[t];
                    }
                }
            }
            finally
            {
                ArrayPool<TK>.Shared.Return(keys);
                ArrayPool<int>.Shared.Return(idx);
            }
        });
    }
}
