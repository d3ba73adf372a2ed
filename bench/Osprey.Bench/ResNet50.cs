using System.Numerics;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Bench;

/// <summary>
/// ResNet-50 (torchvision v1.5 layout: stride on the 3x3 conv) for inference in channels_last, with
/// every batch norm folded into its convolution and ReLU / the residual add fused into the conv
/// epilogue. Weights are seeded random (He-uniform convs, random BN statistics folded with plain arrays).
/// Max pooling and global average pooling are small loops here, so the benchmark only depends on
/// Op.Conv2d and Op.MatMul.
/// </summary>
public sealed class ResNet50 : IDisposable
{
    private readonly ConvBn _stem;
    private readonly List<Bottleneck> _blocks = [];
    private readonly Tensor _fcW, _fcB;

    public ResNet50(int seed = 0)
    {
        var rng = new Random(seed);
        _stem = new ConvBn(rng, 3, 64, 7, 2, 3);
        int inC = 64;
        int[] blocks = [3, 4, 6, 3], widths = [64, 128, 256, 512];
        for (int s = 0; s < 4; s++)
            for (int b = 0; b < blocks[s]; b++)
            {
                int stride = b == 0 && s > 0 ? 2 : 1;
                _blocks.Add(new Bottleneck(rng, inC, widths[s], stride));
                inC = widths[s] * 4;
            }
        _fcW = Tensor.FromArray(Uniform(rng, 1000 * 2048, 1 / MathF.Sqrt(2048)), 1000, 2048);
        _fcB = Tensor.FromArray(Uniform(rng, 1000, 1 / MathF.Sqrt(2048)), 1000);
    }

    /// <summary>x: [N, 3, 224, 224] channels_last; returns logits [N, 1000].</summary>
    public Tensor Forward(Tensor x)
    {
        using var stem = _stem.Run(x, UnaryKind.Relu);
        var h = MaxPool3x3S2(stem);
        foreach (var block in _blocks)
        {
            var next = block.Run(h);
            h.Dispose();
            h = next;
        }
        using (h)
        using (var pooled = GlobalAvgPool(h))
            return Op.Linear(pooled, _fcW, _fcB);
    }

    public void Dispose()
    {
        _stem.Dispose();
        foreach (var b in _blocks) b.Dispose();
        _fcW.Dispose();
        _fcB.Dispose();
    }

    internal static float[] Uniform(Random rng, int n, float bound)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * bound;
        return a;
    }

    /// <summary>3x3 stride 2 pad 1 max pooling of a channels_last tensor (torch.nn.MaxPool2d(3, 2, 1)).</summary>
    private static unsafe Tensor MaxPool3x3S2(Tensor x)
    {
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        int oh = (h + 2 - 3) / 2 + 1, ow = (w + 2 - 3) / 2 + 1;
        var y = Tensor.Empty(new Shape(n, c, oh, ow), DType.Float32, format: MemoryFormat.ChannelsLast);
        nint xp = x.DataPointer, yp = y.DataPointer;
        Parallel.For(0, n * oh, row =>
        {
            var xs = new ReadOnlySpan<float>((void*)xp, n * h * w * c);
            var ys = new Span<float>((void*)yp, n * oh * ow * c);
            int b = row / oh, i = row % oh;
            for (int j = 0; j < ow; j++)
            {
                var d = ys.Slice(((b * oh + i) * ow + j) * c, c);
                d.Fill(float.NegativeInfinity);
                for (int di = 0; di < 3; di++)
                {
                    int ih = i * 2 - 1 + di;
                    if ((uint)ih >= (uint)h) continue;
                    for (int dj = 0; dj < 3; dj++)
                    {
                        int iw = j * 2 - 1 + dj;
                        if ((uint)iw >= (uint)w) continue;
                        var s = xs.Slice(((b * h + ih) * w + iw) * c, c);
                        MaxInto(d, s);
                    }
                }
            }
        });
        return y;
    }

    /// <summary>Mean over H and W of a channels_last tensor: [N, C].</summary>
    private static unsafe Tensor GlobalAvgPool(Tensor x)
    {
        int n = x.Shape[0], c = x.Shape[1], hw = x.Shape[2] * x.Shape[3];
        var y = Tensor.Empty(new Shape(n, c), DType.Float32);
        var xs = new ReadOnlySpan<float>((void*)x.DataPointer, n * hw * c);
        var ys = new Span<float>((void*)y.DataPointer, n * c);
        ys.Clear();
        for (int b = 0; b < n; b++)
        {
            var d = ys.Slice(b * c, c);
            for (int p = 0; p < hw; p++) AddInto(d, xs.Slice((b * hw + p) * c, c));
            for (int i = 0; i < c; i++) d[i] /= hw;
        }
        return y;
    }

    private static void MaxInto(Span<float> d, ReadOnlySpan<float> s)
    {
        int i = 0;
        for (; i <= d.Length - Vector<float>.Count; i += Vector<float>.Count)
            Vector.Max(new Vector<float>(d.Slice(i)), new Vector<float>(s.Slice(i))).CopyTo(d.Slice(i));
        for (; i < d.Length; i++) d[i] = MathF.Max(d[i], s[i]);
    }

    private static void AddInto(Span<float> d, ReadOnlySpan<float> s)
    {
        int i = 0;
        for (; i <= d.Length - Vector<float>.Count; i += Vector<float>.Count)
            (new Vector<float>(d.Slice(i)) + new Vector<float>(s.Slice(i))).CopyTo(d.Slice(i));
        for (; i < d.Length; i++) d[i] += s[i];
    }

    /// <summary>A convolution with its batch norm folded in (weights channels_last, bias = BN shift).</summary>
    private sealed class ConvBn : IDisposable
    {
        private readonly Tensor _w, _b;
        private readonly Conv2dParams _p;

        public ConvBn(Random rng, int cin, int cout, int k, int stride, int pad)
        {
            int fanIn = cin * k * k;
            float[] w = Uniform(rng, cout * fanIn, MathF.Sqrt(6f / fanIn));
            float[] b = new float[cout];
            for (int o = 0; o < cout; o++)
            {
                float gamma = 0.5f + 0.5f * (float)rng.NextDouble(), beta = 0.1f * (float)(rng.NextDouble() - 0.5);
                float mean = 0.1f * (float)(rng.NextDouble() - 0.5), variance = 0.5f + (float)rng.NextDouble();
                float scale = gamma / MathF.Sqrt(variance + 1e-5f);
                for (int i = 0; i < fanIn; i++) w[o * fanIn + i] *= scale;
                b[o] = beta - mean * scale;
            }
            using var wc = Tensor.FromArray(w, cout, cin, k, k);
            _w = Op.Contiguous(wc, MemoryFormat.ChannelsLast);
            _b = Tensor.FromArray(b, cout);
            _p = Conv2dParams.Square(stride, pad);
        }

        public Tensor Run(Tensor x, UnaryOp act, Tensor? residual = null) => Op.Conv2d(x, _w, _p, new Epilogue(_b, residual, act));

        public void Dispose()
        {
            _w.Dispose();
            _b.Dispose();
        }
    }

    private sealed class Bottleneck(Random rng, int cin, int width, int stride) : IDisposable
    {
        private readonly ConvBn _c1 = new(rng, cin, width, 1, 1, 0);
        private readonly ConvBn _c2 = new(rng, width, width, 3, stride, 1);
        private readonly ConvBn _c3 = new(rng, width, width * 4, 1, 1, 0);
        private readonly ConvBn? _down = stride != 1 || cin != width * 4 ? new(rng, cin, width * 4, 1, stride, 0) : null;

        public Tensor Run(Tensor x)
        {
            using var a = _c1.Run(x, UnaryKind.Relu);
            using var b = _c2.Run(a, UnaryKind.Relu);
            using var identity = _down is null ? x.Share() : _down.Run(x, UnaryOp.None);
            return _c3.Run(b, UnaryKind.Relu, identity);
        }

        public void Dispose()
        {
            _c1.Dispose();
            _c2.Dispose();
            _c3.Dispose();
            _down?.Dispose();
        }
    }
}
