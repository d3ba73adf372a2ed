using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Tests.Cuda;

/// <summary>
/// Plain, obviously-correct host implementations (doubles, scalar loops) that GPU kernels are checked
/// against independently of the CPU backend. Semantics follow PyTorch.
/// </summary>
public static class HostRef
{
    public static long[] Strides(int[] s)
    {
        var r = new long[s.Length];
        long acc = 1;
        for (int i = s.Length - 1; i >= 0; i--) { r[i] = acc; acc *= s[i]; }
        return r;
    }

    public static long Numel(int[] s) { long n = 1; foreach (int d in s) n *= d; return n; }

    /// <summary>Coordinates of a row-major linear index.</summary>
    public static int[] Coords(long i, int[] s)
    {
        var c = new int[s.Length];
        for (int d = s.Length - 1; d >= 0; d--) { c[d] = (int)(i % s[d]); i /= s[d]; }
        return c;
    }

    public static Host Map(Host x, Func<double, double> f) => new(Array.ConvertAll(x.D, v => f(v)), x.S);

    public static Host Permute(Host x, params int[] perm)
    {
        var shape = perm.Select(p => x.S[p]).ToArray();
        var xs = Strides(x.S);
        var r = new double[x.D.Length];
        for (long i = 0; i < r.Length; i++)
        {
            var c = Coords(i, shape);
            long off = 0;
            for (int d = 0; d < c.Length; d++) off += c[d] * xs[perm[d]];
            r[i] = x.D[off];
        }
        return new Host(r, shape);
    }

    public static double Unary(UnaryOp op, double x) => op.Kind switch
    {
        UnaryKind.Identity => x,
        UnaryKind.Neg => -x,
        UnaryKind.Abs => Math.Abs(x),
        UnaryKind.Sqrt => Math.Sqrt(x),
        UnaryKind.Exp => Math.Exp(x),
        UnaryKind.Log => Math.Log(x),
        UnaryKind.Relu => Math.Max(x, 0),
        UnaryKind.Relu6 => Math.Clamp(x, 0, 6),
        UnaryKind.LeakyRelu => x > 0 ? x : x * op.A,
        UnaryKind.Silu => x / (1 + Math.Exp(-x)),
        UnaryKind.Sigmoid => 1 / (1 + Math.Exp(-x)),
        UnaryKind.HardSigmoid => Math.Clamp(x / 6 + 0.5, 0, 1),
        UnaryKind.HardSwish => x * Math.Clamp(x / 6 + 0.5, 0, 1),
        UnaryKind.Tanh => Math.Tanh(x),
        UnaryKind.Gelu => 0.5 * x * (1 + Erf(x / Math.Sqrt(2))),
        UnaryKind.Clamp => Math.Clamp(x, op.A, op.B),
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    /// <summary>erf in double: its Taylor series for |x| &lt; 2.5, else 1 - erfc by the continued fraction (no cancellation either way).</summary>
    public static double Erf(double x)
    {
        double ax = Math.Abs(x);
        if (ax >= 2.5)
        {
            double f = ax;
            for (int k = 80; k >= 1; k--) f = ax + k / 2.0 / f;
            return Math.Sign(x) * (1 - Math.Exp(-ax * ax) / (Math.Sqrt(Math.PI) * f));
        }
        double sum = 0, term = ax;
        for (int n = 0; n < 200; n++)
        {
            double t = term / (2 * n + 1);
            sum += t;
            if (Math.Abs(t) < 1e-17 * Math.Abs(sum)) break;
            term *= -ax * ax / (n + 1);
        }
        return Math.Sign(x) * 2 / Math.Sqrt(Math.PI) * sum;
    }

    public static double Binary(BinaryOp op, double a, double b, bool integer) => op switch
    {
        BinaryOp.Add => a + b,
        BinaryOp.Sub => a - b,
        BinaryOp.Mul => a * b,
        BinaryOp.Div => integer ? (b == 0 ? 0 : Math.Truncate(a / b)) : a / b,
        BinaryOp.Max => double.IsNaN(a) || double.IsNaN(b) ? double.NaN : Math.Max(a, b),
        BinaryOp.Min => double.IsNaN(a) || double.IsNaN(b) ? double.NaN : Math.Min(a, b),
        BinaryOp.Pow => Math.Pow(a, b),
        BinaryOp.Eq => a == b ? 1 : 0,
        BinaryOp.Ne => a != b ? 1 : 0,
        BinaryOp.Lt => a < b ? 1 : 0,
        BinaryOp.Le => a <= b ? 1 : 0,
        BinaryOp.Gt => a > b ? 1 : 0,
        BinaryOp.Ge => a >= b ? 1 : 0,
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    public static int[] BroadcastShape(params int[][] shapes)
    {
        int rank = shapes.Max(s => s.Length);
        var r = new int[rank];
        for (int i = 0; i < rank; i++)
            foreach (var s in shapes)
            {
                int d = i < rank - s.Length ? 1 : s[i - (rank - s.Length)];
                if (d != 1) r[i] = d;
                else if (r[i] == 0) r[i] = 1;
            }
        // a zero-size dimension wins over 1
        for (int i = 0; i < rank; i++)
            foreach (var s in shapes)
                if (i >= rank - s.Length && s[i - (rank - s.Length)] == 0) r[i] = 0;
        return r;
    }

    /// <summary>Value of a broadcast input at output coordinates.</summary>
    public static double At(Host x, int[] outCoords)
    {
        int lead = outCoords.Length - x.S.Length;
        long off = 0, stride = 1;
        for (int d = x.S.Length - 1; d >= 0; d--)
        {
            int c = x.S[d] == 1 ? 0 : outCoords[d + lead];
            off += c * stride;
            stride *= x.S[d];
        }
        return x.D[off];
    }

    public static Host Zip(Func<double[], double> f, params Host[] xs)
    {
        var shape = BroadcastShape(xs.Select(x => x.S).ToArray());
        var r = new double[Numel(shape)];
        var args = new double[xs.Length];
        for (long i = 0; i < r.Length; i++)
        {
            var c = Coords(i, shape);
            for (int j = 0; j < xs.Length; j++) args[j] = At(xs[j], c);
            r[i] = f(args);
        }
        return new Host(r, shape);
    }

    public static Host Reduce(ReduceOp op, Host x, int[] axes)
    {
        var shape = (int[])x.S.Clone();
        foreach (int a in axes) shape[a] = 1;
        long outN = Numel(shape);
        var acc = new double[outN];
        var cnt = new long[outN];
        for (long i = 0; i < outN; i++) acc[i] = op == ReduceOp.Max ? double.NegativeInfinity : op == ReduceOp.Min ? double.PositiveInfinity : 0;
        var os = Strides(shape);
        for (long i = 0; i < x.D.Length; i++)
        {
            var c = Coords(i, x.S);
            long o = 0;
            for (int d = 0; d < c.Length; d++) o += (shape[d] == 1 ? 0 : c[d]) * os[d];
            double v = x.D[i];
            acc[o] = op switch
            {
                ReduceOp.Max => double.IsNaN(v) || double.IsNaN(acc[o]) ? double.NaN : Math.Max(acc[o], v),
                ReduceOp.Min => double.IsNaN(v) || double.IsNaN(acc[o]) ? double.NaN : Math.Min(acc[o], v),
                _ => acc[o] + v,
            };
            cnt[o]++;
        }
        if (op == ReduceOp.Mean)
        {
            long count = 1;
            foreach (int a in axes) count *= x.S[a];
            for (long i = 0; i < outN; i++) acc[i] /= count;
        }
        return new Host(acc, shape);
    }

    /// <summary>Applies f to every 1-D line along an axis: f(values) returns the output line (any length).</summary>
    public static Host Lines(Host x, int axis, int outLen, Func<double[], double[]> f)
    {
        int outer = x.S.Take(axis).Aggregate(1, (a, b) => a * b), inner = x.S.Skip(axis + 1).Aggregate(1, (a, b) => a * b), size = x.S[axis];
        var shape = (int[])x.S.Clone();
        shape[axis] = outLen;
        var r = new double[(long)outer * outLen * inner];
        var line = new double[size];
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++)
            {
                for (int k = 0; k < size; k++) line[k] = x.D[((long)o * size + k) * inner + i];
                var res = f(line);
                for (int k = 0; k < outLen; k++) r[((long)o * outLen + k) * inner + i] = res[k];
            }
        return new Host(r, shape);
    }

    public static Host ArgMax(Host x, int axis) => Lines(x, axis, 1, l =>
    {
        int best = 0;
        for (int k = 1; k < l.Length; k++)
            if (!double.IsNaN(l[best]) && (double.IsNaN(l[k]) || l[k] > l[best])) best = k;
        return [best];
    });

    public static Host Softmax(Host x, int axis, bool log) => Lines(x, axis, x.S[axis], l =>
    {
        double m = l.Max();
        double s = l.Sum(v => Math.Exp(v - m));
        return l.Select(v => log ? v - m - Math.Log(s) : Math.Exp(v - m) / s).ToArray();
    });

    /// <summary>Top-k values (indices when <paramref name="indices"/>), stable: equal values keep the lower index first.</summary>
    public static Host TopK(Host x, int k, int axis, bool largest, bool indices) => Lines(x, axis, k, l =>
    {
        var order = Enumerable.Range(0, l.Length).OrderBy(i => largest ? -l[i] : l[i]).ThenBy(i => i).Take(k).ToArray();
        return indices ? order.Select(i => (double)i).ToArray() : order.Select(i => l[i]).ToArray();
    });

    public static Host Gather(Host x, int axis, Host index)
    {
        var r = new double[index.D.Length];
        var xs = Strides(x.S);
        for (long i = 0; i < r.Length; i++)
        {
            var c = Coords(i, index.S);
            c[axis] = (int)index.D[i];
            long off = 0;
            for (int d = 0; d < c.Length; d++) off += c[d] * xs[d];
            r[i] = x.D[off];
        }
        return new Host(r, index.S);
    }

    public static Host IndexSelect(Host x, int axis, Host index)
    {
        var shape = (int[])x.S.Clone();
        shape[axis] = index.D.Length;
        var r = new double[Numel(shape)];
        var xs = Strides(x.S);
        for (long i = 0; i < r.Length; i++)
        {
            var c = Coords(i, shape);
            c[axis] = (int)index.D[c[axis]];
            long off = 0;
            for (int d = 0; d < c.Length; d++) off += c[d] * xs[d];
            r[i] = x.D[off];
        }
        return new Host(r, shape);
    }

    public static Host Pool2d(PoolKind kind, Host x, Pool2dParams p)
    {
        int n = x.S[0], ch = x.S[1], h = x.S[2], w = x.S[3], oh = p.OutH(h), ow = p.OutW(w);
        var r = new double[(long)n * ch * oh * ow];
        long idx = 0;
        for (int b = 0; b < n; b++)
            for (int c = 0; c < ch; c++)
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++)
                    {
                        int h0 = oy * p.StrideH - p.PadH, w0 = ox * p.StrideW - p.PadW;
                        int h1 = Math.Min(h0 + p.KernelH, h + p.PadH), w1 = Math.Min(w0 + p.KernelW, w + p.PadW);
                        int poolSize = (h1 - h0) * (w1 - w0);
                        int hs = Math.Max(h0, 0), ws = Math.Max(w0, 0), he = Math.Min(h1, h), we = Math.Min(w1, w);
                        double acc = kind == PoolKind.Max ? double.NegativeInfinity : 0;
                        for (int yy = hs; yy < he; yy++)
                            for (int xx = ws; xx < we; xx++)
                            {
                                double v = x.D[(((long)b * ch + c) * h + yy) * w + xx];
                                acc = kind == PoolKind.Max ? Math.Max(acc, v) : acc + v;
                            }
                        if (kind == PoolKind.Avg) acc /= p.CountIncludePad ? poolSize : (he - hs) * (we - ws);
                        r[idx++] = acc;
                    }
        return new Host(r, [n, ch, oh, ow]);
    }

    public static Host Resize(ResizeMode mode, Host x, int oh, int ow)
    {
        int n = x.S[0], ch = x.S[1], h = x.S[2], w = x.S[3];
        float sh = (float)h / oh, sw = (float)w / ow;
        var r = new double[(long)n * ch * oh * ow];
        long idx = 0;
        for (int b = 0; b < n; b++)
            for (int c = 0; c < ch; c++)
            {
                double V(int yy, int xx) => x.D[(((long)b * ch + c) * h + yy) * w + xx];
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++)
                    {
                        if (mode == ResizeMode.Nearest)
                            r[idx++] = V(Math.Min((int)MathF.Floor(oy * sh), h - 1), Math.Min((int)MathF.Floor(ox * sw), w - 1));
                        else
                        {
                            double fy = Math.Max(sh * (oy + 0.5) - 0.5, 0), fx = Math.Max(sw * (ox + 0.5) - 0.5, 0);
                            int y0 = (int)fy, x0 = (int)fx, y1 = y0 + (y0 < h - 1 ? 1 : 0), x1 = x0 + (x0 < w - 1 ? 1 : 0);
                            double ly = fy - y0, lx = fx - x0;
                            r[idx++] = (1 - ly) * ((1 - lx) * V(y0, x0) + lx * V(y0, x1)) + ly * ((1 - lx) * V(y1, x0) + lx * V(y1, x1));
                        }
                    }
            }
        return new Host(r, [n, ch, oh, ow]);
    }
}
