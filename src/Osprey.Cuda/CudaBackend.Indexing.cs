using Osprey.Core.Tensors;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda;

// TopK, Gather and IndexSelect: kernels in Kernels/topk.cu and Kernels/index.cu.
public sealed partial class CudaBackend
{
    /// <summary>Keys one block sorts in shared memory (8 bytes each: 32 KiB).</summary>
    private const int TopKChunk = 4096;

    private static readonly string[] s_topkX = NamesByDType("topk_x_");
    private static readonly string[] s_topkKeys = NamesByDType("topk_keys_");
    private static readonly string[] s_gather32 = NamesBySize("gather_", "_i32");
    private static readonly string[] s_gather64 = NamesBySize("gather_", "_i64");
    private static readonly string[] s_select32 = NamesBySize("index_select_", "_i32");
    private static readonly string[] s_select64 = NamesBySize("index_select_", "_i64");

    public void TopK(Tensor x, int k, int axis, bool largest, Tensor values, Tensor indices)
    {
        if (values.Numel == 0) return;
        if (x.DType is DType.Int64 or DType.Bool)
            throw new NotSupportedException($"cuda topk: {x.DType.Name()} values are not supported (floating, int32, int8 and uint8 are)");
        long size = x.Shape[axis];
        if (size > uint.MaxValue) throw new NotSupportedException($"cuda topk: axis of {size} elements is longer than 2^32");
        _context.MakeCurrent();
        long outer = 1, inner = 1;
        for (int d = 0; d < axis; d++) outer *= x.Shape[d];
        for (int d = axis + 1; d < x.Rank; d++) inner *= x.Shape[d];
        long rows = outer * inner;
        int n = (int)Math.Min(System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)Math.Max(size, 2)), TopKChunk);
        int threads = Math.Clamp(n / 2, 32, 1024);
        long chunks = (size + n - 1) / n;
        int t = (int)x.DType;
        int sm = largest ? 0 : 1;
        uint shared = (uint)n * 8;
        if (chunks == 1)
        {
            Launch.Kernel(Fn("topk", s_topkX[t]), new Dim3((uint)rows), threads, shared, Stream,
                Ptr(x), 0UL, Ptr(values), Ptr(indices), size, inner, n, k, k, sm);
            return;
        }
        if (k > TopKChunk / 2)
            throw new NotSupportedException($"cuda topk: k = {k} on an axis of {size} elements; rows longer than {TopKChunk} support k up to {TopKChunk / 2}");
        if (chunks > 65535) throw new NotSupportedException($"cuda topk: axis of {size} elements is too long");
        int keep = k;
        var keys = AllocateWorkspace(rows * chunks * keep * 8);
        try
        {
            Launch.Kernel(Fn("topk", s_topkX[t]), new Dim3((uint)rows, (uint)chunks), threads, shared, Stream,
                Ptr(x), keys.Pointer, Ptr(values), Ptr(indices), size, inner, n, keep, k, sm);
            long count = chunks * keep;
            while (true)
            {
                long next = (count + n - 1) / n;
                if (next == 1)
                {
                    Launch.Kernel(Fn("topk", s_topkKeys[t]), new Dim3((uint)rows), threads, shared, Stream,
                        keys.Pointer, 0UL, Ptr(values), Ptr(indices), count, inner, n, keep, k, sm);
                    return;
                }
                var outKeys = AllocateWorkspace(rows * next * keep * 8);
                Launch.Kernel(Fn("topk", s_topkKeys[t]), new Dim3((uint)rows, (uint)next), threads, shared, Stream,
                    keys.Pointer, outKeys.Pointer, Ptr(values), Ptr(indices), count, inner, n, keep, k, sm);
                keys.Dispose();
                keys = outKeys;
                count = next * keep;
            }
        }
        finally
        {
            keys.Dispose();
        }
    }

    public void Gather(Tensor x, int axis, Tensor index, Tensor y)
    {
        long n = y.Numel;
        if (n == 0) return;
        _context.MakeCurrent();
        var xs = x.Strides.ToArray();
        long axisStride = xs[axis];
        xs[axis] = 0;
        var l = KernelLayout.Build("gather", index.Shape.Span, [y.Strides.ToArray(), xs, index.Strides.ToArray()], anyOrder: true);
        var names = index.DType == DType.Int64 ? s_gather64 : s_gather32;
        Launch.Kernel(Fn("index", names[SizeIndex(x.ElementSize)]), GridFor(n), Block, 0, Stream, Ptr(x), Ptr(index), Ptr(y), l, n, axisStride);
    }

    public void IndexSelect(Tensor x, int axis, Tensor index, Tensor y)
    {
        long n = y.Numel;
        if (n == 0) return;
        _context.MakeCurrent();
        var xs = x.Strides.ToArray();
        long axisStride = xs[axis];
        xs[axis] = 0;
        var ixs = new long[x.Rank];
        ixs[axis] = index.Strides[0];
        var l = KernelLayout.Build("index_select", y.Shape.Span, [y.Strides.ToArray(), xs, ixs], anyOrder: true);
        var names = index.DType == DType.Int64 ? s_select64 : s_select32;
        Launch.Kernel(Fn("index", names[SizeIndex(x.ElementSize)]), GridFor(n), Block, 0, Stream, Ptr(x), Ptr(index), Ptr(y), l, n, axisStride);
    }
}
