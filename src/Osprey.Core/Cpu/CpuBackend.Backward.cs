using System.Numerics;
using System.Runtime.InteropServices;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

// Element-wise and indexing backward kernels (float32): activation derivatives and gather's scatter-add.
public sealed partial class CpuBackend
{
    private const int BackwardChunk = 4096;

    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor gy, Tensor gx)
    {
        RequireFloat32("unary_backward", gy);
        long n = gy.Numel;
        Parallel2.For((n + BackwardChunk - 1) / BackwardChunk, BackwardChunk, (lo, hi) =>
        {
            int start = (int)(lo * BackwardChunk), end = (int)Math.Min(hi * BackwardChunk, n);
            var xs = Data<float>(x).Slice(start, end - start);
            var ys = Data<float>(y).Slice(start, end - start);
            var g = Data<float>(gy).Slice(start, end - start);
            var d = Data<float>(gx).Slice(start, end - start);
            UnaryDerivative(op, xs, ys, g, d);
        });
    }

    /// <summary>d = g * op'(x), in float32 as PyTorch's backward formulas (relu and friends from the output).</summary>
    private static void UnaryDerivative(UnaryOp op, ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> g, Span<float> d)
    {
        switch (op.Kind)
        {
            case UnaryKind.Identity: g.CopyTo(d); return;
            case UnaryKind.Relu: ReluMask(y, g, d); return;
            case UnaryKind.Neg: for (int i = 0; i < d.Length; i++) d[i] = -g[i]; return;
            case UnaryKind.Abs: for (int i = 0; i < d.Length; i++) d[i] = g[i] * MathF.Sign(x[i]); return;
            case UnaryKind.Sqrt: for (int i = 0; i < d.Length; i++) d[i] = g[i] / (2f * y[i]); return;
            case UnaryKind.Exp: for (int i = 0; i < d.Length; i++) d[i] = g[i] * y[i]; return;
            case UnaryKind.Log: for (int i = 0; i < d.Length; i++) d[i] = g[i] / x[i]; return;
            case UnaryKind.Relu6: for (int i = 0; i < d.Length; i++) d[i] = y[i] > 0f && y[i] < 6f ? g[i] : 0f; return;
            case UnaryKind.LeakyRelu: for (int i = 0; i < d.Length; i++) d[i] = x[i] > 0f ? g[i] : g[i] * op.A; return;
            case UnaryKind.Sigmoid: for (int i = 0; i < d.Length; i++) d[i] = g[i] * (1f - y[i]) * y[i]; return;
            case UnaryKind.Tanh: for (int i = 0; i < d.Length; i++) d[i] = g[i] * (1f - y[i] * y[i]); return;
            case UnaryKind.Silu:
                for (int i = 0; i < d.Length; i++)
                {
                    float s = 1f / (1f + MathF.Exp(-x[i]));
                    d[i] = g[i] * s * (1f + x[i] * (1f - s));
                }
                return;
            case UnaryKind.HardSigmoid: for (int i = 0; i < d.Length; i++) d[i] = x[i] > -3f && x[i] < 3f ? g[i] / 6f : 0f; return;
            case UnaryKind.HardSwish:
                for (int i = 0; i < d.Length; i++)
                    d[i] = x[i] < -3f ? 0f : x[i] <= 3f ? g[i] * (x[i] / 3f + 0.5f) : g[i];
                return;
            case UnaryKind.Gelu:
                for (int i = 0; i < d.Length; i++)
                {
                    double v = x[i];
                    double cdf = 0.5 * (1.0 + Activation.Erf(v / Math.Sqrt(2.0)));
                    double pdf = Math.Exp(-0.5 * v * v) / Math.Sqrt(2.0 * Math.PI);
                    d[i] = (float)(g[i] * (cdf + v * pdf));
                }
                return;
            case UnaryKind.Clamp: for (int i = 0; i < d.Length; i++) d[i] = x[i] >= op.A && x[i] <= op.B ? g[i] : 0f; return;
            default: throw new NotSupportedException($"cpu unary_backward: {op.Kind}");
        }
    }

    /// <summary>d = y &gt; 0 ? g : 0, vectorised (the backward of every relu in a detector).</summary>
    private static void ReluMask(ReadOnlySpan<float> y, ReadOnlySpan<float> g, Span<float> d)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vy = MemoryMarshal.Cast<float, Vector<float>>(y);
            var vg = MemoryMarshal.Cast<float, Vector<float>>(g);
            var vd = MemoryMarshal.Cast<float, Vector<float>>(d);
            for (int v = 0; v < vd.Length; v++) vd[v] = Vector.ConditionalSelect(Vector.GreaterThan(vy[v], Vector<float>.Zero), vg[v], Vector<float>.Zero);
            i = vd.Length * Vector<float>.Count;
        }
        for (; i < d.Length; i++) d[i] = y[i] > 0f ? g[i] : 0f;
    }

    public void ScatterAdd(Tensor gy, int axis, Tensor index, Tensor gx)
    {
        RequireFloat32("scatter_add", gy);
        var shape = index.Shape;
        int rank = shape.Rank;
        long outer = 1, inner = 1;
        for (int d = 0; d < axis; d++) outer *= shape[d];
        for (int d = axis + 1; d < rank; d++) inner *= shape[d];
        int mid = shape[axis];
        // offsets into gx (its own, larger shape) of each outer and inner position of index's shape
        var xStrides = gx.Strides;
        var outerOff = new long[outer];
        var innerOff = new long[inner];
        FillOffsets(shape, xStrides, 0, axis, outerOff);
        FillOffsets(shape, xStrides, axis + 1, rank, innerOff);
        long step = xStrides[axis];
        bool wide = index.DType == DType.Int64;
        // different outer positions write disjoint parts of gx, so they run in parallel
        Parallel2.For(outer, mid * inner, (lo, hi) =>
        {
            var gs = Data<float>(gy);
            var xs = Data<float>(gx);
            var i64 = wide ? Data<long>(index) : default;
            var i32 = wide ? default : Data<int>(index);
            for (long o = lo; o < hi; o++)
                for (int m = 0; m < mid; m++)
                {
                    long row = (o * mid + m) * inner;
                    for (long j = 0; j < inner; j++)
                    {
                        long at = wide ? i64[(int)(row + j)] : i32[(int)(row + j)];
                        xs[(int)(outerOff[o] + at * step + innerOff[j])] += gs[(int)(row + j)];
                    }
                }
        });
    }

    /// <summary>offsets[i] = sum of coordinate * stride over dimensions [from, to) of shape, for each row-major position i.</summary>
    private static void FillOffsets(Shape shape, ReadOnlySpan<long> strides, int from, int to, long[] offsets)
    {
        for (long i = 0; i < offsets.Length; i++)
        {
            long rest = i, off = 0;
            for (int d = to - 1; d >= from; d--)
            {
                off += rest % shape[d] * strides[d];
                rest /= shape[d];
            }
            offsets[i] = off;
        }
    }

    private static void RequireFloat32(string op, Tensor t)
    {
        if (t.DType != DType.Float32)
            throw new OpArgumentException($"{op}: the CPU backward kernels take float32, got {t.DType.Name()} {t.Shape}");
    }
}
