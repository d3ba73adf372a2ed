using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

public sealed partial class CpuBackend
{
    /// <summary>
    /// Element type conversion between any two dtypes, any strides. Floating values travel as float32
    /// (exact for float16/bfloat16) and round once, to nearest even, into float16/bfloat16; integers
    /// travel as int64 and wrap into narrower types. Float to integer truncates toward zero as PyTorch
    /// does on x86: int64 directly, int32 directly, int8/uint8 through int32 then wrapping; NaN and
    /// out-of-range values give the type's minimum (int32's minimum, i.e. 0 after wrapping, for
    /// int8/uint8). Anything to bool is x != 0 (NaN is true); bool is 0 or 1.
    /// </summary>
    public void Cast(Tensor x, Tensor y)
    {
        switch (x.DType)
        {
            case DType.Float32: CastFrom<float>(x, y); break;
            case DType.Float16: CastFrom<Half>(x, y); break;
            case DType.BFloat16: CastFrom<BFloat16>(x, y); break;
            case DType.Int8: CastFrom<sbyte>(x, y); break;
            case DType.UInt8: CastFrom<byte>(x, y); break;
            case DType.Int32: CastFrom<int>(x, y); break;
            case DType.Int64: CastFrom<long>(x, y); break;
            case DType.Bool: CastFrom<bool>(x, y); break;
            default: throw new NotSupportedException($"cpu cast from {x.DType}");
        }
    }

    private static void CastFrom<TS>(Tensor x, Tensor y) where TS : unmanaged
    {
        switch (y.DType)
        {
            case DType.Float32: CastRun<TS, float>(x, y); break;
            case DType.Float16: CastRun<TS, Half>(x, y); break;
            case DType.BFloat16: CastRun<TS, BFloat16>(x, y); break;
            case DType.Int8: CastRun<TS, sbyte>(x, y); break;
            case DType.UInt8: CastRun<TS, byte>(x, y); break;
            case DType.Int32: CastRun<TS, int>(x, y); break;
            case DType.Int64: CastRun<TS, long>(x, y); break;
            case DType.Bool: CastRun<TS, bool>(x, y); break;
            default: throw new NotSupportedException($"cpu cast to {y.DType}");
        }
    }

    private static void CastRun<TS, TD>(Tensor x, Tensor y) where TS : unmanaged where TD : unmanaged
    {
        var plan = ElementwisePlan.For(x, y);
        Parallel2.For(plan.Rows, plan.Inner, (lo, hi) =>
        {
            var xs = Data<TS>(x);
            var ys = Data<TD>(y);
            Span<long> off = stackalloc long[2];
            long sx = plan.InnerStrides[0], sy = plan.InnerStrides[1];
            int n = plan.Inner;
            for (long r = lo; r < hi; r++)
            {
                plan.RowOffsets(r, off);
                if (sx == 1 && sy == 1)
                {
                    var s = xs.Slice((int)off[0], n);
                    var d = ys.Slice((int)off[1], n);
                    for (int i = 0; i < n; i++) d[i] = Elem.Convert<TS, TD>(s[i]);
                }
                else
                {
                    for (int i = 0; i < n; i++) ys[(int)(off[1] + i * sy)] = Elem.Convert<TS, TD>(xs[(int)(off[0] + i * sx)]);
                }
            }
        });
    }
}
