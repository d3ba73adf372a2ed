using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Tests.Cuda;

/// <summary>
/// The GPU op checks, shared by the tests (vs a host reference and vs the CPU backend) and by `osprey
/// doctor`'s counterpart. Shapes are awkward on purpose: empty, single elements, primes, sizes that are not
/// multiples of the block size or of a 16-byte vector, strided and broadcast views.
/// </summary>
public static class OpCases
{
    private static readonly DType[] s_floats = [DType.Float32, DType.Float16, DType.BFloat16];
    private static readonly int[][] s_shapes = [[0], [1], [1031], [3, 257], [2, 3, 4099]];

    private static Func<Device, Tensor[]> One(DType t, int[] shape, int seed, double lo = -1, double hi = 1) =>
        d => [GpuCheck.Make(t, shape, seed, lo, hi, d)];

    private static Func<Device, Tensor[]> Many(params Func<Device, Tensor>[] makers) => d => makers.Select(m => m(d)).ToArray();

    private static string S(int[] s) => "[" + string.Join(",", s) + "]";

    public static IEnumerable<OpCase> Unary()
    {
        UnaryOp[] ops =
        [
            UnaryKind.Identity, UnaryKind.Neg, UnaryKind.Abs, UnaryKind.Sqrt, UnaryKind.Exp, UnaryKind.Log, UnaryKind.Relu, UnaryKind.Relu6,
            UnaryOp.LeakyRelu(0.1f), UnaryKind.Silu, UnaryKind.Sigmoid, UnaryKind.HardSigmoid, UnaryKind.HardSwish, UnaryKind.Tanh,
            UnaryKind.Gelu, UnaryOp.Clamp(-0.3f, 0.5f),
        ];
        int seed = 100;
        foreach (var op in ops)
            foreach (var t in s_floats)
            {
                bool positive = op.Kind is UnaryKind.Sqrt or UnaryKind.Log;
                double lo = positive ? 0.05 : -8, hi = positive ? 4 : 8;
                foreach (var shape in s_shapes)
                    yield return new OpCase($"unary {op.Kind} {t.Name()} {S(shape)}", t, One(t, shape, seed++, lo, hi),
                        x => Op.Unary(op, x[0]), h => HostRef.Map(h[0], v => HostRef.Unary(op, v)));
                // a transposed (strided) input and an unaligned view
                yield return new OpCase($"unary {op.Kind} {t.Name()} transposed [13,7]", t, One(t, [13, 7], seed++, lo, hi),
                    x => { using var v = x[0].Transpose(0, 1); return Op.Unary(op, v); },
                    h => HostRef.Map(HostRef.Permute(h[0], 1, 0), v => HostRef.Unary(op, v)));
                yield return new OpCase($"unary {op.Kind} {t.Name()} offset view [1, 1030)", t, One(t, [1031], seed++, lo, hi),
                    x => { using var v = x[0].Slice(0, 1, 1031); return Op.Unary(op, v); },
                    h => HostRef.Map(new Host(h[0].D[1..], [1030]), v => HostRef.Unary(op, v)));
            }
    }

    public static IEnumerable<OpCase> Binary()
    {
        (int[] A, int[] B)[] shapes = [([1031], [1031]), ([7, 13], [13]), ([7, 1], [1, 13]), ([3, 5, 257], []), ([], [3, 5, 257]), ([0, 5], [5]), ([1], [1]), ([2, 3, 4, 5], [3, 1, 5])];
        DType[] types = [DType.Float32, DType.Float16, DType.BFloat16, DType.Int32, DType.Int64, DType.UInt8, DType.Int8];
        int seed = 5000;
        foreach (BinaryOp op in Enum.GetValues<BinaryOp>())
            foreach (var t in types)
            {
                bool integer = !t.IsFloating();
                if (integer && op == BinaryOp.Pow) continue;
                bool compare = op >= BinaryOp.Eq;
                foreach (var (sa, sb) in shapes)
                {
                    int s1 = seed++, s2 = seed++;
                    (double lo, double hi) ra = op == BinaryOp.Pow ? (0.1, 3) : t == DType.UInt8 ? (0, 16) : integer ? (-20, 20) : (-4, 4);
                    (double lo, double hi) rb = op == BinaryOp.Pow ? (-2, 2) : op == BinaryOp.Div && integer ? (1, 9) : t == DType.UInt8 ? (0, 16) : integer ? (-20, 20) : (-4, 4);
                    if (compare && !integer) { ra = (-3, 3); rb = (-3, 3); }
                    DType outT = compare ? DType.Bool : t;
                    yield return new OpCase($"binary {op} {t.Name()} {S(sa)} {S(sb)}", outT,
                        Many(d => GpuCheck.Make(t, sa, s1, ra.lo, ra.hi, d), d => GpuCheck.Make(t, sb, s2, rb.lo, rb.hi, d)),
                        x => Op.Binary(op, x[0], x[1]),
                        h => Wrap(HostRef.Zip(v => HostRef.Binary(op, v[0], v[1], integer), h[0], h[1]), t, compare));
                }
            }
        foreach (var t in new[] { DType.Float32, DType.Float16, DType.Int64 })
            yield return new OpCase($"where {t.Name()} [7,1] ? [7,13] : [13]", t,
                Many(d => GpuCheck.Make(DType.Bool, [7, 1], 1, device: d), d => GpuCheck.Make(t, [7, 13], 2, -9, 9, d), d => GpuCheck.Make(t, [13], 3, -9, 9, d)),
                x => Op.Where(x[0], x[1], x[2]), h => HostRef.Zip(v => v[0] != 0 ? v[1] : v[2], h[0], h[1], h[2]));
        yield return new OpCase("where float32 dense [1031]", DType.Float32,
            Many(d => GpuCheck.Make(DType.Bool, [1031], 4, device: d), d => GpuCheck.Make(DType.Float32, [1031], 5, device: d), d => GpuCheck.Make(DType.Float32, [1031], 6, device: d)),
            x => Op.Where(x[0], x[1], x[2]), h => HostRef.Zip(v => v[0] != 0 ? v[1] : v[2], h[0], h[1], h[2]));
    }

    /// <summary>Integer results wrap to the dtype's width, as the kernels' arithmetic does.</summary>
    private static Host Wrap(Host h, DType t, bool compare)
    {
        if (compare) return h;
        Func<double, double>? f = t switch
        {
            DType.UInt8 => v => (byte)(long)v,
            DType.Int8 => v => (sbyte)(long)v,
            DType.Int32 => v => (int)(long)v,
            _ => null,
        };
        return f is null ? h : HostRef.Map(h, f);
    }

    public static IEnumerable<OpCase> Reductions()
    {
        (int[] Shape, int[] Axes)[] cases =
        [
            ([7, 13, 5], [0]), ([7, 13, 5], [1]), ([7, 13, 5], [2]), ([7, 13, 5], [0, 2]), ([7, 13, 5], [0, 1, 2]),
            ([3, 100003], [1]), ([1 << 20], [0]), ([20011, 3], [1]), ([1], [0]), ([2, 0, 3], [1]), ([4, 9, 6, 5], [1, 3]),
        ];
        int seed = 9000;
        foreach (ReduceOp op in Enum.GetValues<ReduceOp>())
            foreach (var t in new[] { DType.Float32, DType.Float16, DType.Int32 })
                foreach (var (shape, axes) in cases)
                {
                    if (op == ReduceOp.Mean && t == DType.Int32) continue;
                    if (op is ReduceOp.Max or ReduceOp.Min && shape.Contains(0)) continue;
                    if (t == DType.Float16 && op is ReduceOp.Sum or ReduceOp.Mean && HostRef.Numel(shape) > 50000) continue; // fp16 outputs of long sums are too coarse to compare
                    int s = seed++;
                    yield return new OpCase($"reduce {op} {t.Name()} {S(shape)} axes {S(axes)}", t, One(t, shape, s, t == DType.Int32 ? -50 : -1, t == DType.Int32 ? 50 : 1),
                        x => Op.Reduce(op, x[0], axes, keepDims: true), h => HostRef.Reduce(op, h[0], axes));
                }
        foreach (var t in new[] { DType.Float32, DType.Float16, DType.Int32 })
            foreach (var (shape, axis) in new (int[], int)[] { ([7, 13], 0), ([7, 13], 1), ([3, 4099], 1), ([5, 6, 7], 1), ([1, 1], 0) })
            {
                int s = seed++;
                yield return new OpCase($"argmax {t.Name()} {S(shape)} axis {axis}", DType.Int64, One(t, shape, s, -3, 3),
                    x => Op.ArgMax(x[0], axis, keepDims: true), h => HostRef.ArgMax(h[0], axis));
            }
        foreach (var t in s_floats)
            foreach (bool log in new[] { false, true })
                foreach (var (shape, axis) in new (int[], int)[] { ([7, 13], 1), ([7, 13], 0), ([2, 5, 3], 1), ([3, 1031], 1), ([4, 1], 1), ([0, 3], 1) })
                {
                    int s = seed++;
                    yield return new OpCase($"{(log ? "log_softmax" : "softmax")} {t.Name()} {S(shape)} axis {axis}", t, One(t, shape, s, -5, 5),
                        x => log ? Op.LogSoftmax(x[0], axis) : Op.Softmax(x[0], axis), h => HostRef.Softmax(h[0], axis, log));
                }
    }

    public static IEnumerable<OpCase> TopK()
    {
        (int[] Shape, int K, int Axis)[] cases = [([7, 13], 5, 1), ([7, 13], 3, 0), ([3, 10007], 100, 1), ([2, 4096], 4096, 1), ([5, 1], 1, 1), ([4, 9, 3], 9, 1), ([2, 50000], 1000, 1), ([6, 7], 0, 1)];
        int seed = 12000;
        foreach (var t in new[] { DType.Float32, DType.Float16, DType.Int32 })
            foreach (var (shape, k, axis) in cases)
                foreach (bool largest in new[] { true, false })
                {
                    int s = seed++;
                    // int32 values in a small range make ties, checking the lower-index-first rule
                    double lo = t == DType.Int32 ? 0 : -2, hi = t == DType.Int32 ? 7 : 2;
                    yield return new OpCase($"topk values {t.Name()} {S(shape)} k={k} axis {axis} {(largest ? "largest" : "smallest")}", t, One(t, shape, s, lo, hi),
                        x => { var (v, i) = Op.TopK(x[0], k, axis, largest); i.Dispose(); return v; }, h => HostRef.TopK(h[0], k, axis, largest, indices: false));
                    yield return new OpCase($"topk indices {t.Name()} {S(shape)} k={k} axis {axis} {(largest ? "largest" : "smallest")}", DType.Int64, One(t, shape, s, lo, hi),
                            x => { var (v, i) = Op.TopK(x[0], k, axis, largest); v.Dispose(); return i; }, h => HostRef.TopK(h[0], k, axis, largest, indices: true));
                }
    }

    public static IEnumerable<OpCase> Indexing()
    {
        foreach (var t in new[] { DType.Float32, DType.Float16, DType.Int64, DType.UInt8 })
            foreach (var it in new[] { DType.Int64, DType.Int32 })
            {
                yield return new OpCase($"gather {t.Name()} axis 1 index {it.Name()} [5,3] of [5,7]", t,
                    Many(d => GpuCheck.Make(t, [5, 7], 1, 0, 100, d), d => GpuCheck.Make(it, [5, 3], 2, 0, 7, d)),
                    x => Op.Gather(x[0], 1, x[1]), h => HostRef.Gather(h[0], 1, h[1]));
                yield return new OpCase($"gather {t.Name()} axis 0 index {it.Name()} [2,7] of [5,7]", t,
                    Many(d => GpuCheck.Make(t, [5, 7], 3, 0, 100, d), d => GpuCheck.Make(it, [2, 7], 4, 0, 5, d)),
                    x => Op.Gather(x[0], 0, x[1]), h => HostRef.Gather(h[0], 0, h[1]));
                yield return new OpCase($"index_select {t.Name()} axis 1 index {it.Name()} [11] of [5,7,3]", t,
                    Many(d => GpuCheck.Make(t, [5, 7, 3], 5, 0, 100, d), d => GpuCheck.Make(it, [11], 6, 0, 7, d)),
                    x => Op.IndexSelect(x[0], 1, x[1]), h => HostRef.IndexSelect(h[0], 1, h[1]));
                yield return new OpCase($"index_select {t.Name()} axis 0 index {it.Name()} [0] of [5,7]", t,
                    Many(d => GpuCheck.Make(t, [5, 7], 7, 0, 100, d), d => GpuCheck.Make(it, [0], 8, 0, 5, d)),
                    x => Op.IndexSelect(x[0], 0, x[1]), h => HostRef.IndexSelect(h[0], 0, h[1]));
            }
    }

    public static IEnumerable<OpCase> Image()
    {
        Pool2dParams[] pools =
        [
            Pool2dParams.Square(3, 2, 1), Pool2dParams.Square(3, 2, 1, ceilMode: true), Pool2dParams.Square(2, 2),
            Pool2dParams.Square(3, 2, 1, ceilMode: true, countIncludePad: false), new Pool2dParams(3, 2, 1, 2, 1, 0),
        ];
        int seed = 15000;
        foreach (var t in s_floats)
            foreach (bool nhwc in new[] { false, true })
            {
                foreach (var kind in new[] { PoolKind.Max, PoolKind.Avg })
                    foreach (var p in pools)
                    {
                        int s = seed++;
                        yield return new OpCase($"{kind} pool {t.Name()} {(nhwc ? "nhwc" : "nchw")} [2,3,13,11] {p}", t, One(t, [2, 3, 13, 11], s),
                            x => { using var xi = Op.Contiguous(x[0], Format(nhwc)); return Op.Pool2d(kind, xi, p); }, h => HostRef.Pool2d(kind, h[0], p));
                    }
                foreach (var mode in new[] { ResizeMode.Nearest, ResizeMode.Bilinear })
                    foreach (var (oh, ow) in new[] { (13, 11), (3, 2), (14, 10), (7, 5) })
                    {
                        int s = seed++;
                        yield return new OpCase($"resize {mode} {t.Name()} {(nhwc ? "nhwc" : "nchw")} [2,3,7,5] to {oh}x{ow}", t, One(t, [2, 3, 7, 5], s),
                            x => { using var xi = Op.Contiguous(x[0], Format(nhwc)); return Op.Resize(xi, oh, ow, mode); }, h => HostRef.Resize(mode, h[0], oh, ow));
                    }
            }
    }

    private static MemoryFormat Format(bool nhwc) => nhwc ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous;

    public static IEnumerable<OpCase> DataMovement()
    {
        foreach (var t in new[] { DType.Float32, DType.Float16, DType.Int64, DType.UInt8, DType.Bool })
        {
            yield return new OpCase($"copy {t.Name()} rank-8 permute", t, One(t, [2, 3, 1, 2, 5, 2, 3, 2], 21, 0, 50),
                x => { using var v = x[0].Permute(7, 5, 3, 1, 0, 2, 4, 6); return Op.Contiguous(v); },
                h => HostRef.Permute(h[0], 7, 5, 3, 1, 0, 2, 4, 6));
            yield return new OpCase($"copy {t.Name()} step slice", t, One(t, [9, 1031], 22, 0, 50),
                x => { using var v = x[0].Slice(1, 3, 1030, 7); return Op.Contiguous(v); },
                h => new Host(Enumerable.Range(0, 9).SelectMany(r => Enumerable.Range(0, (1030 - 3 + 6) / 7).Select(c => h[0].D[r * 1031 + 3 + c * 7])).ToArray(), [9, (1030 - 3 + 6) / 7]));
            yield return new OpCase($"copy {t.Name()} broadcast expand", t, One(t, [5, 1], 23, 0, 50),
                x => { using var v = x[0].Expand(new Shape(3, 5, 7)); return Op.Contiguous(v); },
                h => HostRef.Zip(v => v[0], h[0], new Host(new double[105], [3, 5, 7])));
            yield return new OpCase($"fill {t.Name()} strided 1.0", t, One(t, [6, 7], 24, 0, 50),
                x => { var y = Op.Contiguous(x[0]); using var v = y.Slice(1, 1, 7, 2); y.Backend.Fill(v, 1.0); return y; },
                h => new Host(h[0].D.Select((v, i) => i % 7 is 1 or 3 or 5 ? 1.0 : v).ToArray(), [6, 7]));
            yield return new OpCase($"fill {t.Name()} dense 1.0", t, One(t, [1031], 25, 0, 50),
                x => Tensor.Full(new Shape(1031), 1.0, t, x[0].Device), h => new Host(Enumerable.Repeat(1.0, 1031).ToArray(), [1031]));
        }
        DType[] all = [DType.Float32, DType.Float16, DType.BFloat16, DType.Int8, DType.UInt8, DType.Int32, DType.Int64, DType.Bool];
        foreach (var s in all)
            foreach (var d in all)
            {
                if (s == d) continue;
                // whole numbers in a range every dtype holds, plus fractions for floats to check truncation toward zero
                double lo = s == DType.UInt8 ? 0 : -100, hi = 100;
                yield return new OpCase($"cast {s.Name()} -> {d.Name()}", d, One(s, [1031], 30 + (int)s * 8 + (int)d, lo, hi),
                    x => Op.Cast(x[0], d), h => HostRef.Map(h[0], v => CastRef(v, d)));
            }
    }

    private static double CastRef(double v, DType d) => d switch
    {
        DType.Float32 => (float)v,
        DType.Float16 => (double)(Half)(float)v,
        DType.BFloat16 => BFloat16.FromFloat((float)v).ToFloat(),
        DType.Int8 => (sbyte)(long)Math.Truncate(v),
        DType.UInt8 => (byte)(long)Math.Truncate(v),
        DType.Int32 => (int)Math.Truncate(v),
        DType.Int64 => (long)Math.Truncate(v),
        DType.Bool => v != 0 ? 1 : 0,
        _ => double.NaN,
    };

    public static IEnumerable<OpCase> All() =>
        DataMovement().Concat(Unary()).Concat(Binary()).Concat(Reductions()).Concat(TopK()).Concat(Indexing()).Concat(Image());
}
