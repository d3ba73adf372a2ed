using System.Runtime.InteropServices;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda.Dnn;
using Osprey.Cuda.Native;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda;

// Backward (training) kernels. Convolution gradients through cuDNN's legacy API (cudnnConvolutionBackwardData /
// BackwardFilter, algorithm chosen per shape by cudnnFind*AlgorithmEx and cached, workspace from the caching
// allocator), in the memory format of the gradient they produce; float32 (exact FMA math unless TF32 is allowed),
// float16 and bfloat16 (fp32 accumulation). The rest are NVRTC kernels in Kernels/backward.cu: activation
// derivatives, pooling and resize as gathers (deterministic, no atomics), scatter-add with float32 atomics.
public sealed partial class CudaBackend
{
    private static readonly string[] s_unaryBackward = NamesByDType("unary_backward_");
    private static readonly string[] s_poolBackward = NamesByDType("pool2d_backward_");
    private static readonly string[] s_resizeBackward = NamesByDType("resize_backward_");

    private readonly Dictionary<(ConvKey Key, bool Filter), ConvBackwardPlan> _convBackwardPlans = [];

    /// <summary>The struct BGeo of Kernels/backward.cu: sizes, gx's memory order, and the strides of x, gy and gx.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct BGeo
    {
        public int N, C, H, W, OH, OW, Nhwc, Pad;
        public long Sxn, Sxc, Sxh, Sxw, Sgn, Sgc, Sgh, Sgw, Sdn, Sdc, Sdh, Sdw;

        public static BGeo Of(Tensor x, Tensor gy, Tensor gx) => new()
        {
            N = gx.Shape[0], C = gx.Shape[1], H = gx.Shape[2], W = gx.Shape[3], OH = gy.Shape[2], OW = gy.Shape[3],
            Nhwc = gx.IsContiguous() ? 0 : 1,
            Sxn = x.Strides[0], Sxc = x.Strides[1], Sxh = x.Strides[2], Sxw = x.Strides[3],
            Sgn = gy.Strides[0], Sgc = gy.Strides[1], Sgh = gy.Strides[2], Sgw = gy.Strides[3],
            Sdn = gx.Strides[0], Sdc = gx.Strides[1], Sdh = gx.Strides[2], Sdw = gx.Strides[3],
        };
    }

    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor gy, Tensor gx)
    {
        long n = gx.Numel;
        if (n == 0) return;
        RequireFloating("unary_backward", gy);
        _context.MakeCurrent();
        Launch.Kernel(Fn("backward", s_unaryBackward[(int)gy.DType]), GridFor(n), Block, 0, Stream,
            Ptr(x), Ptr(y), Ptr(gy), Ptr(gx), n, (int)op.Kind, op.A, op.B);
    }

    public void Pool2dBackward(PoolKind kind, Tensor x, Tensor gy, Pool2dParams p, Tensor gx)
    {
        ArgumentNullException.ThrowIfNull(p);
        long n = gx.Numel;
        if (n == 0) return;
        RequireFloating(kind == PoolKind.Max ? "max_pool2d_backward" : "avg_pool2d_backward", gy);
        _context.MakeCurrent();
        Launch.Kernel(Fn("backward", s_poolBackward[(int)gy.DType]), GridFor(n), Block, 0, Stream, Ptr(x), Ptr(gy), Ptr(gx), BGeo.Of(x, gy, gx),
            p.KernelH, p.KernelW, p.StrideH, p.StrideW, p.PadH, p.PadW, kind == PoolKind.Max ? 0 : 1, p.CountIncludePad ? 1 : 0);
    }

    public void ResizeBackward(ResizeMode mode, Tensor gy, Tensor gx)
    {
        long n = gx.Numel;
        if (n == 0) return;
        RequireFloating(mode == ResizeMode.Nearest ? "interpolate_nearest_backward" : "interpolate_bilinear_backward", gy);
        _context.MakeCurrent();
        if (gy.Numel == 0)
        {
            Fill(gx, 0);
            return;
        }
        Launch.Kernel(Fn("backward", s_resizeBackward[(int)gy.DType]), GridFor(n), Block, 0, Stream, Ptr(gy), Ptr(gx), BGeo.Of(gx, gy, gx),
            mode == ResizeMode.Nearest ? 0 : 1);
    }

    public void ScatterAdd(Tensor gy, int axis, Tensor index, Tensor gx)
    {
        long n = index.Numel;
        if (n == 0) return;
        if (gy.DType != DType.Float32 || gx.DType != DType.Float32)
            throw new NotSupportedException($"cuda scatter_add (gather_backward): float32 gradients only, got {gy.DType.Name()} {gy.Shape}");
        _context.MakeCurrent();
        var xs = gx.Strides.ToArray();
        long axisStride = xs[axis];
        xs[axis] = 0;
        var l = KernelLayout.Build("scatter_add", index.Shape.Span, [xs]);
        string name = index.DType == DType.Int64 ? "scatter_add_f32_i64" : "scatter_add_f32_i32";
        Launch.Kernel(Fn("backward", name), GridFor(n), Block, 0, Stream, Ptr(gy), Ptr(index), Ptr(gx), l, n, axisStride, (long)gx.Shape[axis]);
    }

    public void Conv2dBackwardData(Tensor gy, Tensor weight, Conv2dParams p, Tensor gx)
    {
        ArgumentNullException.ThrowIfNull(p);
        if (gx.Numel == 0) return;
        MakeCurrent();
        if (gy.Numel == 0)
        {
            Fill(gx, 0); // no output position reads the input
            return;
        }
        bool nhwc = !gx.IsContiguous();
        if (ConvBackwardData(gy, weight, p, gx, nhwc ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous)) return;
        if (!nhwc) throw NoConvBackward("conv2d_backward_data", gx, weight, p);
        // cuDNN has no NHWC algorithm for this shape and dtype: compute in NCHW and copy into gx
        using var gxc = Tensor.Empty(gx.Shape, gx.DType, gx.Device);
        if (!ConvBackwardData(gy, weight, p, gxc, MemoryFormat.Contiguous)) throw NoConvBackward("conv2d_backward_data", gx, weight, p);
        Copy(gxc, gx);
    }

    private bool ConvBackwardData(Tensor gy, Tensor weight, Conv2dParams p, Tensor gx, MemoryFormat format)
    {
        using var gyf = Op.Contiguous(gy, format);
        using var wf = Op.Contiguous(weight, format);
        var key = KeyOf(gx, wf, p, ConvFusion.None);
        key = key with { Nhwc = format == MemoryFormat.ChannelsLast, Alignment = Math.Min(key.Alignment, Alignment(gyf.DataPointer, 0)) };
        return RunConvBackward(key, filter: false, gx.DataPointer, wf.DataPointer, gyf);
    }

    public void Conv2dBackwardFilter(Tensor x, Tensor gy, Conv2dParams p, Tensor gw)
    {
        ArgumentNullException.ThrowIfNull(p);
        if (gw.Numel == 0) return;
        MakeCurrent();
        if (x.Numel == 0 || gy.Numel == 0)
        {
            Fill(gw, 0); // an empty batch (or no output positions) contributes nothing
            return;
        }
        bool nhwc = !x.IsContiguous();
        if (ConvBackwardFilter(x, gy, p, gw, nhwc ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous)) return;
        // cuDNN has no NHWC algorithm for this shape and dtype: compute in NCHW
        if (!nhwc || !ConvBackwardFilter(x, gy, p, gw, MemoryFormat.Contiguous)) throw NoConvBackward("conv2d_backward_filter", x, gw, p);
    }

    private bool ConvBackwardFilter(Tensor x, Tensor gy, Conv2dParams p, Tensor gw, MemoryFormat format)
    {
        bool nhwc = format == MemoryFormat.ChannelsLast;
        using var xf = Op.Contiguous(x, format);
        using var gyf = Op.Contiguous(gy, format);
        // cuDNN writes the filter gradient in the data's format (KRSC for NHWC); gw is [O, C/groups, KH, KW] contiguous
        using var dw = nhwc ? Tensor.Empty(gw.Shape, gw.DType, gw.Device, MemoryFormat.ChannelsLast) : gw.Share();
        var key = KeyOf(xf, dw, p, ConvFusion.None);
        key = key with { Nhwc = nhwc, Alignment = Math.Min(key.Alignment, Alignment(gyf.DataPointer, 0)) };
        if (!RunConvBackward(key, filter: true, xf.DataPointer, dw.DataPointer, gyf)) return false;
        if (nhwc) Copy(dw, gw);
        return true;
    }

    private static CudaException NoConvBackward(string op, Tensor x, Tensor w, Conv2dParams p) =>
        new($"{op}: cuDNN has no algorithm for {x.DType.Name()} input {x.Shape}, weight {w.Shape}, {p} in NCHW");

    /// <summary>
    /// Finds (first call per shape) and runs the backward convolution: x is the input (filter) or the input gradient
    /// (data), w the weight gradient (filter) or the weight (data); dy the output gradient in the plan's format.
    /// False (nothing written) when cuDNN supports no algorithm for the key.
    /// </summary>
    private unsafe bool RunConvBackward(ConvKey key, bool filter, nint x, nint w, Tensor dy)
    {
        string what = filter ? "conv2d_backward_filter" : "conv2d_backward_data";
        lock (_dnnLock)
        {
            DnnApi();
            if (!_convBackwardPlans.TryGetValue((key, filter), out var plan))
            {
                plan = new ConvBackwardPlan(_dnn!, key, filter);
                try
                {
                    var d = plan.Desc;
                    if (d.OutN != dy.Shape[0] || d.OutC != dy.Shape[1] || d.OutH != dy.Shape[2] || d.OutW != dy.Shape[3])
                        throw new CudaException($"{what}: cuDNN computes output [{d.OutN}, {d.OutC}, {d.OutH}, {d.OutW}] for {key}, the output gradient is {dy.Shape}");
                    nuint cap = plan.MaxWorkspace(_dnnHandle, (nuint)ConvMaxWorkspace);
                    using var searchSpace = Workspace((long)cap);
                    plan.Search(_dnnHandle, x, w, dy.DataPointer, (nint)(searchSpace?.Pointer ?? 0), cap);
                }
                catch
                {
                    plan.Dispose();
                    throw;
                }
                _convBackwardPlans.Add((key, filter), plan);
            }
            if (plan.Unsupported) return false;
            using var ws = Workspace((long)plan.WorkspaceBytes);
            plan.Run(_dnnHandle, x, w, dy.DataPointer, (nint)(ws?.Pointer ?? 0));
            return true;
        }
    }

    /// <summary>What runs a backward convolution of this shape (legacy algorithm number, workspace, measured ms); null before its first run.</summary>
    internal (int Algo, ulong WorkspaceBytes, float MeasuredMs)? ConvBackwardChoiceFor(Tensor x, Tensor weight, Conv2dParams p, bool filter)
    {
        var key = KeyOf(x, weight, p, ConvFusion.None);
        lock (_dnnLock)
            return _convBackwardPlans.TryGetValue((key, filter), out var plan) && !plan.Unsupported ? (plan.Algo, (ulong)plan.WorkspaceBytes, plan.MeasuredMs) : null;
    }

    private void DisposeConvBackwardPlans()
    {
        foreach (var plan in _convBackwardPlans.Values) plan.Dispose();
        _convBackwardPlans.Clear();
    }

    private static void RequireFloating(string op, Tensor t)
    {
        if (t.DType is not (DType.Float32 or DType.Float16 or DType.BFloat16))
            throw new NotSupportedException($"cuda {op}: floating gradients only, got {t.DType.Name()} {t.Shape}");
    }
}
