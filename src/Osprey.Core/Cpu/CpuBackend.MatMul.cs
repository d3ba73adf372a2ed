using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

public sealed partial class CpuBackend
{
    /// <summary>The SGEMM micro-kernel this process runs ("avx512 12x32", "avx2 6x16" or "scalar 4x4").</summary>
    public static string GemmKernel => Sgemm.KernelName;

    public unsafe void MatMul(Tensor a, Tensor b, bool transposeA, bool transposeB, Epilogue epilogue, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(epilogue);
        if (a.DType != DType.Float32)
        {
            // float16 / bfloat16: float32 operands, float32 accumulation, one rounding on store
            using var af = ToFloat32(a);
            using var bf = ToFloat32(b);
            using var yf = Tensor.Empty(y.Shape, DType.Float32, y.Device);
            using var biasF = epilogue.Bias is null ? null : ToFloat32(epilogue.Bias);
            using var resF = epilogue.Residual is null ? null : ToFloat32(epilogue.Residual);
            MatMul(af, bf, transposeA, transposeB, new Epilogue(biasF, resF, epilogue.Activation), yf);
            FromFloat32(yf, y);
            return;
        }
        int ba = a.Shape[0], bb = b.Shape[0], batch = y.Shape[0], m = y.Shape[1], n = y.Shape[2];
        int k = transposeA ? a.Shape[1] : a.Shape[2];
        using var bias = epilogue.Bias is null ? null : Ops.Op.Dense(epilogue.Bias);
        using var res = epilogue.Residual is null ? null : Ops.Op.Dense(epilogue.Residual);
        var aAll = Data<float>(a);
        var bAll = Data<float>(b);
        var yAll = Data<float>(y);
        long aStride = ba == 1 ? 0 : (long)m * k, bStride = bb == 1 ? 0 : (long)k * n, yStride = (long)m * n;
        int gemms = batch, rows = m;
        if (ba == batch && bb == 1 && !transposeA && batch > 1)
        {
            // [B, M, K] @ [K, N]: one product with B*M rows
            gemms = 1;
            rows = batch * m;
        }
        fixed (float* pa = aAll, pb = bAll, py = yAll)
        {
            float* pBias = bias is null ? null : (float*)bias.DataPointer;
            float* pRes = res is null ? null : (float*)res.DataPointer;
            for (int i = 0; i < gemms; i++)
            {
                long ao = i * aStride, bo = i * bStride, yo = i * yStride;
                var am = transposeA ? new MatRef(pa + ao, a.Numel - ao, 1, m) : new MatRef(pa + ao, a.Numel - ao, k, 1);
                var bm = transposeB ? new MatRef(pb + bo, b.Numel - bo, 1, k) : new MatRef(pb + bo, b.Numel - bo, n, 1);
                var epi = new GemmEpilogue(pBias, n, false, pRes is null ? null : pRes + yo, y.Numel - yo, epilogue.Activation);
                Sgemm.Run(rows, n, k, am, bm, py + yo, y.Numel - yo, n, epi);
            }
        }
    }

    /// <summary>A float32 copy of a float16/bfloat16 tensor in the same memory format (dense inputs only).</summary>
    private static Tensor ToFloat32(Tensor t)
    {
        var format = t.Rank == 4 && !t.IsContiguous() && t.IsContiguous(MemoryFormat.ChannelsLast) ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous;
        using var src = Ops.Op.Dense(t, format);
        var dst = Tensor.Empty(t.Shape, DType.Float32, t.Device, format);
        var d = Data<float>(dst).Slice(0, (int)t.Numel);
        switch (t.DType)
        {
            case DType.Float32: Data<float>(src).Slice(0, d.Length).CopyTo(d); break;
            case DType.Float16:
                {
                    var s = Data<Half>(src);
                    for (int i = 0; i < d.Length; i++) d[i] = (float)s[i];
                    break;
                }
            case DType.BFloat16:
                {
                    var s = Data<BFloat16>(src);
                    for (int i = 0; i < d.Length; i++) d[i] = s[i].ToFloat();
                    break;
                }
            default: throw new NotSupportedException($"cpu: no float32 conversion from {t.DType.Name()}");
        }
        return dst;
    }

    /// <summary>Rounds a dense float32 tensor (nearest even) into a dense float16/bfloat16 tensor of the same layout.</summary>
    private static void FromFloat32(Tensor src, Tensor dst)
    {
        var s = Data<float>(src).Slice(0, (int)src.Numel);
        switch (dst.DType)
        {
            case DType.Float16:
                {
                    var d = Data<Half>(dst);
                    for (int i = 0; i < s.Length; i++) d[i] = (Half)s[i];
                    break;
                }
            case DType.BFloat16:
                {
                    var d = Data<BFloat16>(dst);
                    for (int i = 0; i < s.Length; i++) d[i] = BFloat16.FromFloat(s[i]);
                    break;
                }
            default: throw new NotSupportedException($"cpu: no float32 rounding into {dst.DType.Name()}");
        }
    }
}
