using System.Runtime.InteropServices;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda;

// Pool2d and Resize for NCHW and NHWC: kernels in Kernels/image.cu.
public sealed partial class CudaBackend
{
    private static readonly string[] s_pool = NamesByDType("pool2d_");
    private static readonly string[] s_poolVec = NamesByDType("pool2d_nhwc_vec_");
    private static readonly string[] s_resize = NamesByDType("resize_");

    /// <summary>The struct Geo of Kernels/image.cu: sizes, y's memory order, and both tensors' strides.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Geo
    {
        public int N, C, H, W, OH, OW, Nhwc, Pad;
        public long Sxn, Sxc, Sxh, Sxw, Syn, Syc, Syh, Syw;

        public static Geo Of(Tensor x, Tensor y) => new()
        {
            N = x.Shape[0], C = x.Shape[1], H = x.Shape[2], W = x.Shape[3], OH = y.Shape[2], OW = y.Shape[3],
            Nhwc = y.IsContiguous() ? 0 : 1,
            Sxn = x.Strides[0], Sxc = x.Strides[1], Sxh = x.Strides[2], Sxw = x.Strides[3],
            Syn = y.Strides[0], Syc = y.Strides[1], Syh = y.Strides[2], Syw = y.Strides[3],
        };
    }

    public void Pool2d(PoolKind kind, Tensor x, Pool2dParams p, Tensor y)
    {
        long n = y.Numel;
        if (n == 0) return;
        _context.MakeCurrent();
        int lanes = 16 / x.DType.SizeOf();
        if (PoolVectorised(x, y, lanes))
        {
            Launch.Kernel(Fn("image", s_poolVec[(int)x.DType]), GridFor(n / lanes), Block, 0, Stream, Ptr(x), Ptr(y), Geo.Of(x, y),
                p.KernelH, p.KernelW, p.StrideH, p.StrideW, p.PadH, p.PadW, kind == PoolKind.Max ? 0 : 1, p.CountIncludePad ? 1 : 0);
            return;
        }
        Launch.Kernel(Fn("image", s_pool[(int)x.DType]), GridFor(n), Block, 0, Stream, Ptr(x), Ptr(y), Geo.Of(x, y),
            p.KernelH, p.KernelW, p.StrideH, p.StrideW, p.PadH, p.PadW, kind == PoolKind.Max ? 0 : 1, p.CountIncludePad ? 1 : 0);
    }

    /// <summary>
    /// The 16-byte channels-last kernel applies when x and y are dense channels-last, C is a multiple of the lanes per
    /// 16 bytes (8 for 16-bit floats, 4 for float32) and both start 16-byte aligned; otherwise the strided kernel runs.
    /// </summary>
    internal static bool PoolVectorised(Tensor x, Tensor y, int lanes) =>
        x.Shape[1] % lanes == 0 && x.IsContiguous(MemoryFormat.ChannelsLast) && y.IsContiguous(MemoryFormat.ChannelsLast)
        && Aligned16(x) && Aligned16(y);

    public void Resize(ResizeMode mode, Tensor x, Tensor y)
    {
        long n = y.Numel;
        if (n == 0) return;
        _context.MakeCurrent();
        Launch.Kernel(Fn("image", s_resize[(int)x.DType]), GridFor(n), Block, 0, Stream, Ptr(x), Ptr(y), Geo.Of(x, y), mode == ResizeMode.Nearest ? 0 : 1);
    }
}
