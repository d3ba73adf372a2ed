using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

/// <summary>A reduction over values widened to TA (double for floating dtypes, long for integers).</summary>
internal interface IReduceOperator<TA> where TA : unmanaged, INumber<TA>
{
    static abstract TA Identity { get; }
    static abstract TA Combine(TA acc, TA v);
}

internal struct SumReduce<TA> : IReduceOperator<TA> where TA : unmanaged, INumber<TA>
{
    public static TA Identity => TA.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TA Combine(TA acc, TA v) => acc + v;
}

/// <summary>Maximum; NaN wins (torch.amax propagates NaN).</summary>
internal struct MaxReduce<TA> : IReduceOperator<TA> where TA : unmanaged, INumber<TA>
{
    public static TA Identity => typeof(TA) == typeof(double) ? TA.CreateTruncating(double.NegativeInfinity) : TA.CreateTruncating(long.MinValue);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TA Combine(TA acc, TA v) => TA.Max(acc, v); // branch-free; NaN-propagating for double
}

/// <summary>Minimum; NaN wins.</summary>
internal struct MinReduce<TA> : IReduceOperator<TA> where TA : unmanaged, INumber<TA>
{
    public static TA Identity => typeof(TA) == typeof(double) ? TA.CreateTruncating(double.PositiveInfinity) : TA.CreateTruncating(long.MaxValue);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TA Combine(TA acc, TA v) => TA.Min(acc, v);
}

public sealed partial class CpuBackend
{
    /// <summary>Columns of an outer (non-contiguous-axis) reduction handled by one work item.</summary>
    private const int ReduceColumns = 512;

    public void Reduce(ReduceOp op, Tensor x, int[] axes, Tensor y)
    {
        switch (x.DType)
        {
            case DType.Float32: ReduceAs<float, double>(op, x, axes, y); break;
            case DType.Float16: ReduceAs<Half, double>(op, x, axes, y); break;
            case DType.BFloat16: ReduceAs<BFloat16, double>(op, x, axes, y); break;
            case DType.Int8: ReduceAs<sbyte, long>(op, x, axes, y); break;
            case DType.UInt8: ReduceAs<byte, long>(op, x, axes, y); break;
            case DType.Int32: ReduceAs<int, long>(op, x, axes, y); break;
            case DType.Int64: ReduceAs<long, long>(op, x, axes, y); break;
            default: throw new OpArgumentException($"{op.ToString().ToLowerInvariant()}: cannot reduce {x.DType.Name()} {x.Shape}");
        }
    }

    private static void ReduceAs<TS, TA>(ReduceOp op, Tensor x, int[] axes, Tensor y) where TS : unmanaged where TA : unmanaged, INumber<TA>
    {
        switch (op)
        {
            case ReduceOp.Sum: ReduceRun<TS, TA, SumReduce<TA>>(x, axes, y, mean: false); break;
            case ReduceOp.Mean: ReduceRun<TS, TA, SumReduce<TA>>(x, axes, y, mean: true); break;
            case ReduceOp.Max: ReduceRun<TS, TA, MaxReduce<TA>>(x, axes, y, mean: false); break;
            case ReduceOp.Min: ReduceRun<TS, TA, MinReduce<TA>>(x, axes, y, mean: false); break;
            default: throw new NotSupportedException($"cpu reduce: {op}");
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TA Widen<TS, TA>(TS v)
    {
        if (typeof(TA) == typeof(double)) { double d = Elem.ToF(v); return Unsafe.As<double, TA>(ref d); }
        long l = Elem.ToL(v);
        return Unsafe.As<long, TA>(ref l);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TS Narrow<TA, TS>(TA acc, bool mean, long count)
    {
        if (typeof(TA) == typeof(double))
        {
            double d = Unsafe.As<TA, double>(ref acc);
            return Elem.FromF<TS>((float)(mean ? d / count : d));
        }
        return Elem.FromL<TS>(Unsafe.As<TA, long>(ref acc));
    }

    /// <summary>
    /// Splits x's dimensions into kept ones (walked by one plan together with y) and reduced ones (a
    /// second plan). When the reduced dimensions include x's contiguous one, each output reduces whole
    /// runs (SIMD for float32 sums); otherwise outputs are produced a block of contiguous columns at a
    /// time, accumulating whole x rows into scratch.
    /// </summary>
    private static void ReduceRun<TS, TA, TOp>(Tensor x, int[] axes, Tensor y, bool mean)
        where TS : unmanaged where TA : unmanaged, INumber<TA> where TOp : struct, IReduceOperator<TA>
    {
        int rank = x.Rank;
        var keptDims = new List<int>();
        var reducedDims = new List<int>();
        var xk = new List<long>();
        var yk = new List<long>();
        var xr = new List<long>();
        for (int d = 0; d < rank; d++)
        {
            if (Array.IndexOf(axes, d) >= 0) { reducedDims.Add(x.Shape[d]); xr.Add(x.Strides[d]); }
            else { keptDims.Add(x.Shape[d]); xk.Add(x.Strides[d]); yk.Add(y.Strides[d]); }
        }
        var kShape = new Shape(keptDims.ToArray());
        var rShape = new Shape(reducedDims.ToArray());
        var kp = StridedPlan.For(kShape, [xk.ToArray(), yk.ToArray()]);
        var rp = StridedPlan.For(rShape, [xr.ToArray()]);
        long count = rShape.Numel;
        bool outer = rp.Rows * rp.Inner > 1 && kp.Inner > 1 && kp.InnerStrides[0] == 1 && kp.InnerStrides[1] == 1 && rp.InnerStrides[0] != 1;
        if (outer) ReduceOuter<TS, TA, TOp>(x, y, kp, rp, mean, count);
        else ReduceInner<TS, TA, TOp>(x, y, kp, rp, mean, count);
    }

    private static void ReduceInner<TS, TA, TOp>(Tensor x, Tensor y, StridedPlan kp, StridedPlan rp, bool mean, long count)
        where TS : unmanaged where TA : unmanaged, INumber<TA> where TOp : struct, IReduceOperator<TA>
    {
        Parallel2.For(kp.Rows * kp.Inner, Math.Max(count, 1), (lo, hi) =>
        {
            var xs = Data<TS>(x);
            var ys = Data<TS>(y);
            Span<long> ko = stackalloc long[2];
            Span<long> ro = stackalloc long[1];
            long rs = rp.InnerStrides[0];
            int rn = rp.Inner;
            for (long u = lo; u < hi; u++)
            {
                kp.RowOffsets(u / kp.Inner, ko);
                long j = u % kp.Inner;
                long xb = ko[0] + j * kp.InnerStrides[0];
                TA acc = TOp.Identity;
                for (long rr = 0; rr < rp.Rows; rr++)
                {
                    rp.RowOffsets(rr, ro);
                    long b = xb + ro[0];
                    if (typeof(TS) == typeof(float) && typeof(TOp) == typeof(SumReduce<double>) && rs == 1)
                    {
                        double s = SimdDrivers.Sum(MemoryMarshal.Cast<TS, float>(xs.Slice((int)b, rn)));
                        acc = TOp.Combine(acc, Unsafe.As<double, TA>(ref s));
                        continue;
                    }
                    if (typeof(TS) == typeof(float) && typeof(TOp) == typeof(MaxReduce<double>) && rs == 1)
                    {
                        double m = SimdDrivers.Max(MemoryMarshal.Cast<TS, float>(xs.Slice((int)b, rn)));
                        acc = TOp.Combine(acc, Unsafe.As<double, TA>(ref m));
                        continue;
                    }
                    for (int i = 0; i < rn; i++) acc = TOp.Combine(acc, Widen<TS, TA>(xs[(int)(b + i * rs)]));
                }
                ys[(int)(ko[1] + j * kp.InnerStrides[1])] = Narrow<TA, TS>(acc, mean, count);
            }
        });
    }

    private static void ReduceOuter<TS, TA, TOp>(Tensor x, Tensor y, StridedPlan kp, StridedPlan rp, bool mean, long count)
        where TS : unmanaged where TA : unmanaged, INumber<TA> where TOp : struct, IReduceOperator<TA>
    {
        long blocks = (kp.Inner + ReduceColumns - 1) / ReduceColumns;
        Parallel2.For(kp.Rows * blocks, ReduceColumns * count, (lo, hi) =>
        {
            var xs = Data<TS>(x);
            var ys = Data<TS>(y);
            Span<long> ko = stackalloc long[2];
            Span<long> ro = stackalloc long[1];
            Span<TA> acc = stackalloc TA[ReduceColumns];
            long rs = rp.InnerStrides[0];
            for (long u = lo; u < hi; u++)
            {
                kp.RowOffsets(u / blocks, ko);
                int c0 = (int)(u % blocks) * ReduceColumns;
                int m = Math.Min(ReduceColumns, kp.Inner - c0);
                var a = acc[..m];
                a.Fill(TOp.Identity);
                for (long rr = 0; rr < rp.Rows; rr++)
                {
                    rp.RowOffsets(rr, ro);
                    for (int i = 0; i < rp.Inner; i++)
                    {
                        long b = ko[0] + c0 + ro[0] + i * rs;
                        var row = xs.Slice((int)b, m);
                        if (typeof(TS) == typeof(float) && typeof(TOp) == typeof(SumReduce<double>))
                        {
                            SimdDrivers.Accumulate(MemoryMarshal.Cast<TS, float>(row), MemoryMarshal.Cast<TA, double>(a));
                            continue;
                        }
                        for (int j = 0; j < m; j++) a[j] = TOp.Combine(a[j], Widen<TS, TA>(row[j]));
                    }
                }
                var yrow = ys.Slice((int)(ko[1] + c0), m);
                for (int j = 0; j < m; j++) yrow[j] = Narrow<TA, TS>(a[j], mean, count);
            }
        });
    }

    public void ArgMax(Tensor x, int axis, Tensor y)
    {
        switch (x.DType)
        {
            case DType.Float32: ArgMaxRun<float>(x, axis, y); break;
            case DType.Float16: ArgMaxRun<Half>(x, axis, y); break;
            case DType.BFloat16: ArgMaxRun<BFloat16>(x, axis, y); break;
            case DType.Int8: ArgMaxRun<sbyte>(x, axis, y); break;
            case DType.UInt8: ArgMaxRun<byte>(x, axis, y); break;
            case DType.Int32: ArgMaxRun<int>(x, axis, y); break;
            case DType.Int64: ArgMaxRun<long>(x, axis, y); break;
            case DType.Bool: ArgMaxRun<bool>(x, axis, y); break;
            default: throw new NotSupportedException($"cpu argmax: {x.DType}");
        }
    }

    /// <summary>First index of the maximum along an axis; the first NaN counts as the maximum, as torch.argmax.</summary>
    private static void ArgMaxRun<TS>(Tensor x, int axis, Tensor y) where TS : unmanaged
    {
        var xs0 = x.Strides.ToArray();
        var ys0 = y.Strides.ToArray();
        long step = xs0[axis];
        int n = x.Shape[axis];
        xs0[axis] = 0;
        ys0[axis] = 0;
        var plan = StridedPlan.For(y.Shape, [xs0, ys0]);
        Parallel2.For(plan.Rows * plan.Inner, n, (lo, hi) =>
        {
            var xs = Data<TS>(x);
            var ys = Data<long>(y);
            Span<long> off = stackalloc long[2];
            for (long u = lo; u < hi; u++)
            {
                plan.RowOffsets(u / plan.Inner, off);
                long j = u % plan.Inner;
                long xb = off[0] + j * plan.InnerStrides[0];
                int best = 0;
                if (Elem.IsFloat<TS>())
                {
                    float bv = Elem.ToF(xs[(int)xb]);
                    for (int i = 1; i < n && !float.IsNaN(bv); i++)
                    {
                        float v = Elem.ToF(xs[(int)(xb + i * step)]);
                        if (v > bv || float.IsNaN(v)) { bv = v; best = i; }
                    }
                }
                else
                {
                    long bv = Elem.ToL(xs[(int)xb]);
                    for (int i = 1; i < n; i++)
                    {
                        long v = Elem.ToL(xs[(int)(xb + i * step)]);
                        if (v > bv) { bv = v; best = i; }
                    }
                }
                ys[(int)(off[1] + j * plan.InnerStrides[1])] = best;
            }
        });
    }
}
