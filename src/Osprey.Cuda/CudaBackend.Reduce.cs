using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda;

// Reduce, ArgMax and Softmax: kernels in Kernels/reduce.cu.
public sealed partial class CudaBackend
{
    private static readonly string[] s_reducePartial = NamesByDType("reduce_partial_");
    private static readonly string[] s_reduceFinish = NamesByDType("reduce_finish_");
    private static readonly string[] s_reduceThread = NamesByDType("reduce_thread_");
    private static readonly string[] s_argmax = NamesByDType("argmax_");
    private static readonly string[] s_softmaxRows = NamesByDType("softmax_rows_");
    private static readonly string[] s_softmaxCols = NamesByDType("softmax_cols_");

    public void Reduce(ReduceOp op, Tensor x, int[] axes, Tensor y)
    {
        long outputs = y.Numel;
        if (outputs == 0) return;
        _context.MakeCurrent();
        int rank = x.Rank;
        var keptShape = x.Shape.ToArray();
        var redShape = new int[rank];
        long count = 1;
        for (int d = 0; d < rank; d++)
        {
            bool reduced = Array.IndexOf(axes, d) >= 0;
            redShape[d] = reduced ? x.Shape[d] : 1;
            if (reduced) { keptShape[d] = 1; count *= x.Shape[d]; }
        }
        long[] xs = x.Strides.ToArray();
        var k = KernelLayout.Build("reduce", keptShape, [xs]);
        var r = KernelLayout.Build("reduce", redShape, [xs]);
        int t = (int)x.DType;
        bool floating = x.DType.IsFloating();
        int sms = Info.Multiprocessors;
        if (count < 512 && outputs >= (long)sms * 64)
        {
            Launch.Kernel(Fn("reduce", s_reduceThread[t]), GridFor(outputs), Block, 0, Stream, Ptr(x), Ptr(y), k, r, outputs, count, (int)op);
            return;
        }
        int block = count >= Block ? Block : (int)Math.Max(32, (count + 31) / 32 * 32);
        long wanted = ((long)sms * 8 + outputs - 1) / outputs;
        int slices = (int)Math.Clamp(Math.Min(wanted, count / 8192), 1, 65535);
        if (outputs > int.MaxValue) throw new NotSupportedException($"cuda reduce: {outputs} outputs exceed one grid");
        var grid = new Dim3((uint)outputs, (uint)slices);
        if (slices == 1)
        {
            Launch.Kernel(Fn("reduce", s_reducePartial[t]), grid, block, 0, Stream, Ptr(x), Ptr(y), 0UL, k, r, outputs, count, 1, (int)op);
            return;
        }
        using var part = AllocateWorkspace(outputs * slices * (floating ? 4 : 8));
        Launch.Kernel(Fn("reduce", s_reducePartial[t]), grid, block, 0, Stream, Ptr(x), Ptr(y), part.Pointer, k, r, outputs, count, slices, (int)op);
        Launch.Kernel(Fn("reduce", s_reduceFinish[t]), GridFor(outputs), Block, 0, Stream, part.Pointer, Ptr(y), outputs, count, slices, (int)op);
    }

    public void ArgMax(Tensor x, int axis, Tensor y)
    {
        long outputs = y.Numel;
        if (outputs == 0) return;
        _context.MakeCurrent();
        var keptShape = x.Shape.ToArray();
        keptShape[axis] = 1;
        var k = KernelLayout.Build("argmax", keptShape, [x.Strides.ToArray()]);
        Launch.Kernel(Fn("reduce", s_argmax[(int)x.DType]), GridFor(outputs * 32), Block, 0, Stream,
            Ptr(x), Ptr(y), k, outputs, (long)x.Shape[axis], x.Strides[axis]);
    }

    public void Softmax(Tensor x, int axis, bool log, Tensor y)
    {
        if (y.Numel == 0) return;
        _context.MakeCurrent();
        long outer = 1, inner = 1;
        for (int d = 0; d < axis; d++) outer *= x.Shape[d];
        for (int d = axis + 1; d < x.Rank; d++) inner *= x.Shape[d];
        long size = x.Shape[axis];
        int t = (int)x.DType;
        if (inner == 1)
            Launch.Kernel(Fn("reduce", s_softmaxRows[t]), GridFor(outer * 32), Block, 0, Stream, Ptr(x), Ptr(y), outer, size, log ? 1 : 0);
        else
            Launch.Kernel(Fn("reduce", s_softmaxCols[t]), GridFor(outer * inner), Block, 0, Stream, Ptr(x), Ptr(y), outer, size, inner, log ? 1 : 0);
    }
}
