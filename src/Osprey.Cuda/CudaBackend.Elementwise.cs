using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda;

// Unary, Binary and Where: kernels in Kernels/unary.cu and Kernels/binary.cu. Dense, 16-byte aligned
// operands take the vectorised paths (16-byte loads and stores, grid-stride); the rest walk strides.
public sealed partial class CudaBackend
{
    private static readonly string[] s_unaryContig = NamesByDType("unary_contig_");
    private static readonly string[] s_unaryStrided = NamesByDType("unary_strided_");
    private static readonly string[] s_binaryContig = NamesByDType("binary_contig_");
    private static readonly string[] s_binaryScalar = NamesByDType("binary_scalar_");
    private static readonly string[] s_binaryStrided = NamesByDType("binary_strided_");
    private static readonly string[] s_compareContig = NamesByDType("compare_contig_");
    private static readonly string[] s_compareScalar = NamesByDType("compare_scalar_");
    private static readonly string[] s_compareStrided = NamesByDType("compare_strided_");
    private static readonly string[] s_whereContig = NamesBySize("where_contig_");
    private static readonly string[] s_whereStrided = NamesBySize("where_strided_");

    public void Unary(UnaryOp op, Tensor x, Tensor y)
    {
        long n = y.Numel;
        if (n == 0) return;
        _context.MakeCurrent();
        var l = KernelLayout.Of("unary", y, x);
        int t = (int)x.DType;
        if (l.IsContiguous(2) && Aligned16(x) && Aligned16(y))
            Launch.Kernel(Fn("unary", s_unaryContig[t]), GridFor(PackCount(n, x.ElementSize)), Block, 0, Stream,
                Ptr(x), Ptr(y), n, (int)op.Kind, op.A, op.B);
        else
            Launch.Kernel(Fn("unary", s_unaryStrided[t]), GridFor(n), Block, 0, Stream, Ptr(x), Ptr(y), l, n, (int)op.Kind, op.A, op.B);
    }

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        long n = y.Numel;
        if (n == 0) return;
        _context.MakeCurrent();
        var l = KernelLayout.Of("binary", y, a, b);
        int t = (int)a.DType;
        bool compare = op >= BinaryOp.Eq;
        uint grid = GridFor(PackCount(n, a.ElementSize));
        if (l.IsContiguous(3) && Aligned16(a) && Aligned16(b) && Aligned16(y))
        {
            Launch.Kernel(Fn("binary", (compare ? s_compareContig : s_binaryContig)[t]), grid, Block, 0, Stream, Ptr(a), Ptr(b), Ptr(y), n, (int)op);
            return;
        }
        // one operand a single value broadcast over a dense other: x op s or s op x
        var pair = KernelLayout.Of("binary", y, a);
        if (IsBroadcastScalar(l, 2) && pair.IsContiguous(2) && Aligned16(a) && Aligned16(y))
        {
            Launch.Kernel(Fn("binary", (compare ? s_compareScalar : s_binaryScalar)[t]), grid, Block, 0, Stream, Ptr(a), Ptr(b), Ptr(y), n, (int)op, 0);
            return;
        }
        pair = KernelLayout.Of("binary", y, b);
        if (IsBroadcastScalar(l, 1) && pair.IsContiguous(2) && Aligned16(b) && Aligned16(y))
        {
            Launch.Kernel(Fn("binary", (compare ? s_compareScalar : s_binaryScalar)[t]), grid, Block, 0, Stream, Ptr(b), Ptr(a), Ptr(y), n, (int)op, 1);
            return;
        }
        Launch.Kernel(Fn("binary", (compare ? s_compareStrided : s_binaryStrided)[t]), GridFor(n), Block, 0, Stream, Ptr(a), Ptr(b), Ptr(y), l, n, (int)op);
    }

    public void Where(Tensor condition, Tensor a, Tensor b, Tensor y)
    {
        long n = y.Numel;
        if (n == 0) return;
        _context.MakeCurrent();
        var l = KernelLayout.Of("where", y, condition, a, b);
        int s = SizeIndex(y.ElementSize);
        if (l.IsContiguous(4))
            Launch.Kernel(Fn("binary", s_whereContig[s]), GridFor(n), Block, 0, Stream, Ptr(condition), Ptr(a), Ptr(b), Ptr(y), n);
        else
            Launch.Kernel(Fn("binary", s_whereStrided[s]), GridFor(n), Block, 0, Stream, Ptr(condition), Ptr(a), Ptr(b), Ptr(y), l, n);
    }

    /// <summary>Work items of a vectorised kernel: 16-byte packs plus the tail.</summary>
    private static long PackCount(long n, int elementSize) => Math.Max(n / (16 / elementSize), 1);
}
