using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Core;

/// <summary>
/// The channels_last implicit-GEMM convolution (CpuBackend.Conv2dNhwc.cs) against a float64 direct
/// convolution, on shapes that reach each of its paths: many rows (each task packs its own col rows),
/// few rows (col packed once and shared, tasks split the output channels), K over one KC block (256),
/// contiguous kernel-row runs with clipping at the borders, dilation, strides, groups, odd sizes and
/// partial tiles. In Category Simd, so scripts/test.sh re-runs it on the AVX2 and scalar micro-kernels.
/// </summary>
[Trait("Category", "Simd")]
public class Conv2dNhwcTests
{
    [Theory]
    // n, c, h, w, o, kh, kw, stride h/w, pad h/w, dilation h/w, groups
    [InlineData(1, 3, 23, 19, 20, 7, 7, 2, 2, 3, 3, 1, 1, 1)]        // stem-like: 3 channels, row runs clipped at every border
    [InlineData(2, 40, 9, 11, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1)]        // few rows: shared col, K = 360 (two KC blocks)
    [InlineData(1, 300, 5, 5, 72, 1, 1, 1, 1, 0, 0, 1, 1, 1)]        // 1x1, K = 300, 25 rows (one partial tile)
    [InlineData(3, 16, 20, 20, 24, 3, 3, 1, 1, 2, 2, 2, 2, 1)]       // dilation 2: per-tap copies, many rows
    [InlineData(2, 12, 13, 15, 18, 3, 3, 2, 2, 1, 1, 1, 1, 3)]       // groups 3, stride 2
    [InlineData(1, 64, 30, 30, 40, 1, 1, 2, 2, 0, 0, 1, 1, 1)]       // 1x1 stride 2
    [InlineData(4, 96, 24, 24, 40, 3, 3, 1, 1, 1, 1, 1, 1, 2)]       // groups 2, many rows, K = 432 per group
    [InlineData(2, 7, 11, 17, 33, 1, 5, 1, 2, 0, 2, 1, 1, 1)]        // 1x5 kernel, asymmetric stride and padding
    [InlineData(1, 520, 3, 4, 2050, 3, 3, 1, 1, 1, 1, 1, 1, 1)]      // 12 rows, 2050 channels (partial panel), K = 4680
    public void Matches_a_direct_float64_convolution(int n, int c, int h, int w, int o, int kh, int kw,
        int sh, int sw, int ph, int pw, int dh, int dw, int groups)
    {
        var p = new Conv2dParams(sh, sw, ph, pw, dh, dw, groups);
        int cg = c / groups;
        float[] xs = Conv2dTests.Lcg(21, (long)n * c * h * w), ws = Conv2dTests.Lcg(22, (long)o * cg * kh * kw), bs = Conv2dTests.Lcg(23, o);
        int oh = p.OutH(h, kh), ow = p.OutW(w, kw);
        float[] rs = Conv2dTests.Lcg(24, (long)n * o * oh * ow);
        using var xc = Tensor.FromArray(xs, n, c, h, w);
        using var x = Op.Contiguous(xc, MemoryFormat.ChannelsLast);
        using var wt = Tensor.FromArray(ws, o, cg, kh, kw);
        using var b = Tensor.FromArray(bs, o);
        using var rc = Tensor.FromArray(rs, n, o, oh, ow);
        using var r = Op.Contiguous(rc, MemoryFormat.ChannelsLast);
        using var y = Op.Conv2d(x, wt, p, new Epilogue(b, r, UnaryKind.Relu));
        Assert.True(y.IsContiguous(MemoryFormat.ChannelsLast));
        using var yc = Op.Contiguous(y);

        var expected = new float[n * o * oh * ow];
        int og = o / groups;
        for (int bi = 0; bi < n; bi++)
            for (int oc = 0; oc < o; oc++)
            {
                int gi = oc / og;
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++)
                    {
                        double s = bs[oc];
                        for (int ci = 0; ci < cg; ci++)
                            for (int u = 0; u < kh; u++)
                            {
                                int ih = i * sh - ph + u * dh;
                                if (ih < 0 || ih >= h) continue;
                                for (int v = 0; v < kw; v++)
                                {
                                    int iw = j * sw - pw + v * dw;
                                    if (iw < 0 || iw >= w) continue;
                                    s += (double)xs[((bi * c + gi * cg + ci) * h + ih) * w + iw] * ws[((oc * cg + ci) * kh + u) * kw + v];
                                }
                            }
                        int at = ((bi * o + oc) * oh + i) * ow + j;
                        expected[at] = (float)Math.Max(s + rs[at], 0);
                    }
            }
        Close.Assert(expected, yc.ToArray<float>(), 2e-4, 2e-4, $"conv {n}x{c}x{h}x{w} -> {o} k{kh}x{kw} {p}");
    }

    [Fact]
    public void Repeated_calls_give_identical_results()
    {
        // tasks are taken by whichever thread is free: the result must not depend on which one ran what
        using var xc = Tensor.FromArray(Conv2dTests.Lcg(31, 2 * 32 * 28 * 28), 2, 32, 28, 28);
        using var x = Op.Contiguous(xc, MemoryFormat.ChannelsLast);
        using var wt = Tensor.FromArray(Conv2dTests.Lcg(32, 64 * 32 * 9), 64, 32, 3, 3);
        using var first = Op.Conv2d(x, wt, Conv2dParams.Square(1, 1));
        float[] want = first.ToArray<float>();
        for (int i = 0; i < 5; i++)
        {
            using var again = Op.Conv2d(x, wt, Conv2dParams.Square(1, 1));
            Assert.Equal(want, again.ToArray<float>());
        }
    }
}
