using Osprey.Core.Tensors;
using Osprey.Cuda.Native;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda;

// Copy, Fill and Cast: kernels in Kernels/copy.cu and Kernels/cast.cu.
public sealed partial class CudaBackend
{
    private static readonly string[] s_copyStrided = NamesBySize("copy_strided_");
    private static readonly string[] s_fillStrided = NamesBySize("fill_strided_");
    private static readonly string[] s_fillContig = NamesBySize("fill_contig_");
    private static readonly string[,] s_castContig = CastNames("cast_contig_");
    private static readonly string[,] s_castStrided = CastNames("cast_strided_");

    private static string[,] CastNames(string prefix)
    {
        var names = new string[8, 8];
        for (int s = 0; s < 8; s++)
            for (int d = 0; d < 8; d++) names[s, d] = $"{prefix}{Suffixes[s]}_{Suffixes[d]}";
        return names;
    }

    public void Copy(Tensor source, Tensor destination)
    {
        long n = destination.Numel;
        if (n == 0) return;
        _context.MakeCurrent();
        var l = KernelLayout.Of("copy", destination, source);
        int es = destination.ElementSize;
        if (l.IsContiguous(2))
        {
            CuDriver.Check(CuDriver.cuMemcpyDtoDAsync(Ptr(destination), Ptr(source), (nuint)(n * es), Stream.Handle));
            return;
        }
        Launch.Kernel(Fn("copy", s_copyStrided[SizeIndex(es)]), GridFor(n), Block, 0, Stream, Ptr(source), Ptr(destination), l, n);
    }

    public void Fill(Tensor destination, double value)
    {
        long n = destination.Numel;
        if (n == 0) return;
        _context.MakeCurrent();
        ulong bits = destination.DType switch
        {
            DType.Float32 => BitConverter.SingleToUInt32Bits((float)value),
            DType.Float16 => BitConverter.HalfToUInt16Bits((Half)value),
            DType.BFloat16 => BFloat16.FromFloat((float)value).Bits,
            DType.Int8 => (byte)(sbyte)value,
            DType.UInt8 => (byte)value,
            DType.Int32 => (uint)(int)value,
            DType.Int64 => (ulong)(long)value,
            DType.Bool => value != 0 ? 1UL : 0UL,
            _ => throw new NotSupportedException($"cuda fill: dtype {destination.DType}"),
        };
        var l = KernelLayout.Of("fill", destination);
        int es = destination.ElementSize;
        if (l.IsContiguous(1))
        {
            ulong p = Ptr(destination);
            switch (es)
            {
                case 1: CuDriver.Check(CuDriver.cuMemsetD8Async(p, (byte)bits, (nuint)n, Stream.Handle)); return;
                case 2: CuDriver.Check(CuDriver.cuMemsetD16Async(p, (ushort)bits, (nuint)n, Stream.Handle)); return;
                case 4: CuDriver.Check(CuDriver.cuMemsetD32Async(p, (uint)bits, (nuint)n, Stream.Handle)); return;
                default: Launch.Kernel(Fn("copy", s_fillContig[3]), GridFor(n), Block, 0, Stream, p, n, bits); return;
            }
        }
        Launch.Kernel(Fn("copy", s_fillStrided[SizeIndex(es)]), GridFor(n), Block, 0, Stream, Ptr(destination), l, n, bits);
    }

    public void Cast(Tensor x, Tensor y)
    {
        long n = y.Numel;
        if (n == 0) return;
        _context.MakeCurrent();
        var l = KernelLayout.Of("cast", y, x);
        int s = (int)x.DType, d = (int)y.DType;
        if (l.IsContiguous(2) && Aligned16(x) && Aligned16(y))
        {
            long perThread = 16 / Math.Max(x.ElementSize, y.ElementSize); // CastWidth in cast.cu
            Launch.Kernel(Fn("cast", s_castContig[s, d]), GridFor(Math.Max(n / perThread, 1)), Block, 0, Stream, Ptr(x), Ptr(y), n);
        }
        else
            Launch.Kernel(Fn("cast", s_castStrided[s, d]), GridFor(n), Block, 0, Stream, Ptr(x), Ptr(y), l, n);
    }
}
