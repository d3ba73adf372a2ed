using System.Numerics;
using System.Runtime.InteropServices;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

public sealed partial class CpuBackend
{
    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        if (op >= BinaryOp.Eq)
        {
            Compare(op, a, b, y);
            return;
        }
        switch (a.DType)
        {
            case DType.Float32: FloatBinary<float>(op, a, b, y); break;
            case DType.Float16: FloatBinary<Half>(op, a, b, y); break;
            case DType.BFloat16: FloatBinary<BFloat16>(op, a, b, y); break;
            case DType.Int32: IntBinary<int>(op, a, b, y); break;
            case DType.Int64: IntBinary<long>(op, a, b, y); break;
            case DType.Int8: IntBinary<sbyte>(op, a, b, y); break;
            case DType.UInt8: IntBinary<byte>(op, a, b, y); break;
            default: throw new OpArgumentException($"{OpName(op)}: not defined for {a.DType.Name()} {a.Shape}");
        }
    }

    private static string OpName(BinaryOp op) => op.ToString().ToLowerInvariant();

    private static void FloatBinary<TS>(BinaryOp op, Tensor a, Tensor b, Tensor y) where TS : unmanaged
    {
        switch (op)
        {
            case BinaryOp.Add: BinaryRun<TS, float, AddOp<float>>(a, b, y); break;
            case BinaryOp.Sub: BinaryRun<TS, float, SubOp<float>>(a, b, y); break;
            case BinaryOp.Mul: BinaryRun<TS, float, MulOp<float>>(a, b, y); break;
            case BinaryOp.Div: BinaryRun<TS, float, DivOp>(a, b, y); break;
            case BinaryOp.Max: BinaryRun<TS, float, MaxOp<float>>(a, b, y); break;
            case BinaryOp.Min: BinaryRun<TS, float, MinOp<float>>(a, b, y); break;
            case BinaryOp.Pow: BinaryRun<TS, float, PowOp>(a, b, y); break;
            default: throw new NotSupportedException($"cpu binary: {op}");
        }
    }

    private static void IntBinary<T>(BinaryOp op, Tensor a, Tensor b, Tensor y) where T : unmanaged, IBinaryInteger<T>
    {
        switch (op)
        {
            case BinaryOp.Add: BinaryRun<T, T, AddOp<T>>(a, b, y); break;
            case BinaryOp.Sub: BinaryRun<T, T, SubOp<T>>(a, b, y); break;
            case BinaryOp.Mul: BinaryRun<T, T, MulOp<T>>(a, b, y); break;
            case BinaryOp.Max: BinaryRun<T, T, MaxOp<T>>(a, b, y); break;
            case BinaryOp.Min: BinaryRun<T, T, MinOp<T>>(a, b, y); break;
            case BinaryOp.Div:
                if (AnyElement<T>(b, v => v == T.Zero)) throw new OpArgumentException($"div: integer division by zero (divisor {b.DType.Name()} {b.Shape} holds a 0)");
                BinaryRun<T, T, IntDivOp<T>>(a, b, y);
                break;
            case BinaryOp.Pow:
                if (AnyElement<T>(b, v => v < T.Zero)) throw new OpArgumentException($"pow: integers to negative integer powers are not allowed (exponent {b.DType.Name()} {b.Shape})");
                BinaryRun<T, T, IntPowOp<T>>(a, b, y);
                break;
            default: throw new NotSupportedException($"cpu binary: {op}");
        }
    }

    /// <summary>Whether any element of a (strided) tensor satisfies a test; a cold pre-check, not a kernel.</summary>
    private static bool AnyElement<T>(Tensor t, Func<T, bool> test) where T : unmanaged
    {
        var plan = StridedPlan.For(t);
        var d = Data<T>(t);
        Span<long> off = stackalloc long[1];
        long s = plan.InnerStrides[0];
        for (long r = 0; r < plan.Rows; r++)
        {
            plan.RowOffsets(r, off);
            for (int i = 0; i < plan.Inner; i++)
                if (test(d[(int)(off[0] + i * s)])) return true;
        }
        return false;
    }

    /// <summary>
    /// The binary loop: TS is the storage type, TC the compute type (float for float16/bfloat16).
    /// Dense rows go straight to the span drivers; a row with a broadcast (stride 0) operand uses the
    /// scalar-broadcast driver; anything else is gathered into TC scratch chunk by chunk.
    /// </summary>
    private static void BinaryRun<TS, TC, TOp>(Tensor a, Tensor b, Tensor y)
        where TS : unmanaged where TC : unmanaged where TOp : struct, IBinaryOperator<TC>
    {
        var plan = ElementwisePlan.For(a, b, y);
        Parallel2.For(plan.Rows, plan.Inner, (lo, hi) =>
        {
            var ad = Data<TS>(a);
            var bd = Data<TS>(b);
            var yd = Data<TS>(y);
            Span<long> off = stackalloc long[3];
            Span<TC> ba = stackalloc TC[Chunk];
            Span<TC> bb = stackalloc TC[Chunk];
            long sa = plan.InnerStrides[0], sb = plan.InnerStrides[1], sy = plan.InnerStrides[2];
            int n = plan.Inner;
            for (long r = lo; r < hi; r++)
            {
                plan.RowOffsets(r, off);
                if (typeof(TS) == typeof(TC) && sy == 1)
                {
                    var ys = MemoryMarshal.Cast<TS, TC>(yd.Slice((int)off[2], n));
                    if (sa == 1 && sb == 1)
                    {
                        SimdDrivers.Binary<TC, TOp>(MemoryMarshal.Cast<TS, TC>(ad.Slice((int)off[0], n)), MemoryMarshal.Cast<TS, TC>(bd.Slice((int)off[1], n)), ys);
                        continue;
                    }
                    if (sa == 1 && sb == 0)
                    {
                        SimdDrivers.BinaryScalar<TC, TOp>(MemoryMarshal.Cast<TS, TC>(ad.Slice((int)off[0], n)), Elem.Convert<TS, TC>(bd[(int)off[1]]), false, ys);
                        continue;
                    }
                    if (sa == 0 && sb == 1)
                    {
                        SimdDrivers.BinaryScalar<TC, TOp>(MemoryMarshal.Cast<TS, TC>(bd.Slice((int)off[1], n)), Elem.Convert<TS, TC>(ad[(int)off[0]]), true, ys);
                        continue;
                    }
                }
                for (int c = 0; c < n; c += Chunk)
                {
                    int m = Math.Min(Chunk, n - c);
                    var ca = ba[..m];
                    var cb = bb[..m];
                    Gather(ad, off[0] + c * sa, sa, ca);
                    Gather(bd, off[1] + c * sb, sb, cb);
                    SimdDrivers.Binary<TC, TOp>(ca, cb, ca);
                    Scatter(ca, yd, off[2] + c * sy, sy);
                }
            }
        });
    }

    internal static void Gather<TS, TC>(ReadOnlySpan<TS> src, long offset, long stride, Span<TC> dst)
    {
        for (int i = 0; i < dst.Length; i++) dst[i] = Elem.Convert<TS, TC>(src[(int)(offset + i * stride)]);
    }

    internal static void Scatter<TC, TS>(ReadOnlySpan<TC> src, Span<TS> dst, long offset, long stride)
    {
        for (int i = 0; i < src.Length; i++) dst[(int)(offset + i * stride)] = Elem.Convert<TC, TS>(src[i]);
    }

    private static void Compare(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        switch (a.DType)
        {
            case DType.Float32: CompareAs<float, float>(op, a, b, y); break;
            case DType.Float16: CompareAs<Half, float>(op, a, b, y); break;
            case DType.BFloat16: CompareAs<BFloat16, float>(op, a, b, y); break;
            case DType.Int32: CompareAs<int, long>(op, a, b, y); break;
            case DType.Int64: CompareAs<long, long>(op, a, b, y); break;
            case DType.Int8: CompareAs<sbyte, long>(op, a, b, y); break;
            case DType.UInt8: CompareAs<byte, long>(op, a, b, y); break;
            case DType.Bool when op is BinaryOp.Eq or BinaryOp.Ne: CompareAs<bool, long>(op, a, b, y); break;
            default: throw new OpArgumentException($"{OpName(op)}: not defined for {a.DType.Name()} {a.Shape}");
        }
    }

    private static void CompareAs<TS, TC>(BinaryOp op, Tensor a, Tensor b, Tensor y) where TS : unmanaged where TC : unmanaged, INumber<TC>
    {
        switch (op)
        {
            case BinaryOp.Eq: CompareRun<TS, TC, EqOp>(a, b, y); break;
            case BinaryOp.Ne: CompareRun<TS, TC, NeOp>(a, b, y); break;
            case BinaryOp.Lt: CompareRun<TS, TC, LtOp>(a, b, y); break;
            case BinaryOp.Le: CompareRun<TS, TC, LeOp>(a, b, y); break;
            case BinaryOp.Gt: CompareRun<TS, TC, GtOp>(a, b, y); break;
            case BinaryOp.Ge: CompareRun<TS, TC, GeOp>(a, b, y); break;
            default: throw new NotSupportedException($"cpu compare: {op}");
        }
    }

    private static void CompareRun<TS, TC, TOp>(Tensor a, Tensor b, Tensor y)
        where TS : unmanaged where TC : unmanaged, INumber<TC> where TOp : struct, ICompareOperator
    {
        var plan = ElementwisePlan.For(a, b, y);
        Parallel2.For(plan.Rows, plan.Inner, (lo, hi) =>
        {
            var ad = Data<TS>(a);
            var bd = Data<TS>(b);
            var yd = Data<bool>(y);
            Span<long> off = stackalloc long[3];
            long sa = plan.InnerStrides[0], sb = plan.InnerStrides[1], sy = plan.InnerStrides[2];
            for (long r = lo; r < hi; r++)
            {
                plan.RowOffsets(r, off);
                for (int i = 0; i < plan.Inner; i++)
                    yd[(int)(off[2] + i * sy)] = TOp.Invoke(Elem.Convert<TS, TC>(ad[(int)(off[0] + i * sa)]), Elem.Convert<TS, TC>(bd[(int)(off[1] + i * sb)]));
            }
        });
    }

    public void Where(Tensor condition, Tensor a, Tensor b, Tensor y)
    {
        switch (a.ElementSize)
        {
            case 1: WhereRun<byte>(condition, a, b, y); break;
            case 2: WhereRun<ushort>(condition, a, b, y); break;
            case 4: WhereRun<uint>(condition, a, b, y); break;
            default: WhereRun<ulong>(condition, a, b, y); break;
        }
    }

    private static void WhereRun<T>(Tensor condition, Tensor a, Tensor b, Tensor y) where T : unmanaged
    {
        var plan = ElementwisePlan.For(condition, a, b, y);
        Parallel2.For(plan.Rows, plan.Inner, (lo, hi) =>
        {
            var cd = Data<bool>(condition);
            var ad = Data<T>(a);
            var bd = Data<T>(b);
            var yd = Data<T>(y);
            Span<long> off = stackalloc long[4];
            long sc = plan.InnerStrides[0], sa = plan.InnerStrides[1], sb = plan.InnerStrides[2], sy = plan.InnerStrides[3];
            for (long r = lo; r < hi; r++)
            {
                plan.RowOffsets(r, off);
                for (int i = 0; i < plan.Inner; i++)
                    yd[(int)(off[3] + i * sy)] = cd[(int)(off[0] + i * sc)] ? ad[(int)(off[1] + i * sa)] : bd[(int)(off[2] + i * sb)];
            }
        });
    }
}
