using System.Text.Json;
using Osprey.Core;
using Osprey.Core.Backends;
using Osprey.Core.Cpu;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Core;

/// <summary>Conv2d against PyTorch goldens (tools/golden_conv.py), in both memory formats and with fused epilogues.</summary>
[Trait("Category", "Simd")]
public class Conv2dTests
{
    private static readonly JsonDocument Golden =
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "conv_golden.json")));

    /// <summary>The fixture generator: s = (s*1103515245 + 12345) mod 2^31; v = ((s>>8) mod 2001 - 1000)/1000.</summary>
    internal static float[] Lcg(int seed, long count)
    {
        long s = seed & 0x7FFFFFFF;
        var a = new float[count];
        for (long i = 0; i < count; i++)
        {
            s = (s * 1103515245 + 12345) & 0x7FFFFFFF;
            a[i] = (float)(((s >> 8) % 2001 - 1000) / 1000.0);
        }
        return a;
    }

    public static TheoryData<string> CaseNames()
    {
        var d = new TheoryData<string>();
        foreach (var c in Golden.RootElement.GetProperty("cases").EnumerateArray()) d.Add(c.GetProperty("name").GetString()!);
        return d;
    }

    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(v => v.GetInt32()).ToArray();

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Matches_pytorch_in_both_memory_formats(string name)
    {
        var c = Golden.RootElement.GetProperty("cases").EnumerateArray().First(e => e.GetProperty("name").GetString() == name);
        int n = c.GetProperty("n").GetInt32(), ch = c.GetProperty("c").GetInt32(), h = c.GetProperty("h").GetInt32(), w = c.GetProperty("w").GetInt32();
        int o = c.GetProperty("o").GetInt32(), kh = c.GetProperty("kh").GetInt32(), kw = c.GetProperty("kw").GetInt32();
        int groups = c.GetProperty("groups").GetInt32(), seed = c.GetProperty("seed").GetInt32();
        int[] st = Ints(c.GetProperty("stride")), pd = Ints(c.GetProperty("pad")), dl = Ints(c.GetProperty("dilation")), ys = Ints(c.GetProperty("shape"));
        var p = new Conv2dParams(st[0], st[1], pd[0], pd[1], dl[0], dl[1], groups);
        var act = c.GetProperty("activation").GetString() switch
        {
            "relu" => new UnaryOp(UnaryKind.Relu),
            "relu6" => new UnaryOp(UnaryKind.Relu6),
            _ => UnaryOp.None,
        };
        var yShape = new Shape(ys);
        float[] expected = c.GetProperty("y").EnumerateArray().Select(v => (float)v.GetDouble()).ToArray();

        using var x = Tensor.FromArray(Lcg(seed, (long)n * ch * h * w), n, ch, h, w);
        using var wt = Tensor.FromArray(Lcg(seed + 1, (long)o * (ch / groups) * kh * kw), o, ch / groups, kh, kw);
        using var bias = c.GetProperty("bias").GetBoolean() ? Tensor.FromArray(Lcg(seed + 2, o), o) : null;
        using var res = c.GetProperty("residual").GetBoolean() ? Tensor.FromSpan<float>(Lcg(seed + 3, yShape.Numel), yShape) : null;
        var epi = new Epilogue(bias, res, act);

        using var y = Op.Conv2d(x, wt, p, epi);
        Assert.Equal(yShape, y.Shape);
        Assert.True(y.IsContiguous());
        Close.Assert(expected, y.ToArray<float>(), 1e-4, 1e-4, $"{name} NCHW");

        // channels_last input (and residual): same numbers, channels_last output
        using var xl = Op.Contiguous(x, MemoryFormat.ChannelsLast);
        using var rl = res is null ? null : Op.Contiguous(res, MemoryFormat.ChannelsLast);
        using var yl = Op.Conv2d(xl, wt, p, new Epilogue(bias, rl, act));
        Assert.True(yl.IsContiguous(MemoryFormat.ChannelsLast));
        using var ylc = Op.Contiguous(yl);
        Close.Assert(expected, ylc.ToArray<float>(), 1e-4, 1e-4, $"{name} NHWC");
    }

    [Fact]
    public void Nhwc_input_with_nchw_residual_is_handled()
    {
        using var x = Tensor.FromArray(Lcg(1, 2 * 8 * 5 * 5), 2, 8, 5, 5);
        using var w = Tensor.FromArray(Lcg(2, 16 * 8), 16, 8, 1, 1);
        using var r = Tensor.FromArray(Lcg(3, 2 * 16 * 5 * 5), 2, 16, 5, 5);
        using var y = Op.Conv2d(x, w, epilogue: new Epilogue(Residual: r));
        using var xl = Op.Contiguous(x, MemoryFormat.ChannelsLast);
        using var yl = Op.Conv2d(xl, w, epilogue: new Epilogue(Residual: r));
        using var ylc = Op.Contiguous(yl);
        Close.Assert(y.ToArray<float>(), ylc.ToArray<float>(), 1e-5, 1e-5, "1x1 NHWC vs NCHW");
    }

    [Fact]
    public void Wide_layers_split_across_threads_match_nchw_and_nhwc()
    {
        // big enough that the GEMM splits over threads and uses several K and M blocks
        using var x = Tensor.FromArray(Lcg(7, 2 * 40 * 17 * 19), 2, 40, 17, 19);
        using var w = Tensor.FromArray(Lcg(8, 70 * 40 * 3 * 3), 70, 40, 3, 3);
        using var b = Tensor.FromArray(Lcg(9, 70), 70);
        var p = Conv2dParams.Square(1, 1);
        using var y = Op.Conv2d(x, w, p, new Epilogue(b, null, UnaryKind.Relu));
        using var xl = Op.Contiguous(x, MemoryFormat.ChannelsLast);
        using var yl = Op.Conv2d(xl, w, p, new Epilogue(b, null, UnaryKind.Relu));
        using var ylc = Op.Contiguous(yl);
        float[] got = y.ToArray<float>();
        Close.Assert(got, ylc.ToArray<float>(), 1e-4, 1e-4, "NHWC vs NCHW");
        // spot-check against a direct sum in float64
        float[] xs = x.ToArray<float>(), ws = w.ToArray<float>(), bs = b.ToArray<float>();
        foreach (var (n, o, oh, ow) in new[] { (0, 0, 0, 0), (1, 69, 16, 18), (1, 33, 8, 0), (0, 12, 3, 17) })
        {
            double s = bs[o];
            for (int c = 0; c < 40; c++)
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++)
                    {
                        int ih = oh - 1 + i, iw = ow - 1 + j;
                        if (ih < 0 || ih >= 17 || iw < 0 || iw >= 19) continue;
                        s += (double)xs[((n * 40 + c) * 17 + ih) * 19 + iw] * ws[((o * 40 + c) * 3 + i) * 3 + j];
                    }
            Assert.Equal(Math.Max(s, 0), got[((n * 70 + o) * 17 + oh) * 19 + ow], 3);
        }
    }

    [Theory]
    [InlineData(DType.Float16, 2e-2)]
    [InlineData(DType.BFloat16, 6e-2)]
    public void Half_precision_accumulates_in_float32(DType dtype, double tol)
    {
        // inputs rounded to the half type; the float32 conv of the rounded values is the reference
        float[] xv = Round(Lcg(11, 6 * 7 * 7), dtype), wv = Round(Lcg(12, 4 * 6 * 3 * 3), dtype);
        using var xh = HalfTensor(xv, dtype, new Shape(1, 6, 7, 7));
        using var wh = HalfTensor(wv, dtype, new Shape(4, 6, 3, 3));
        using var yh = Op.Conv2d(xh, wh, Conv2dParams.Square(1, 1));
        Assert.Equal(dtype, yh.DType);
        using var xr = Tensor.FromArray(xv, 1, 6, 7, 7);
        using var wr = Tensor.FromArray(wv, 4, 6, 3, 3);
        using var yr = Op.Conv2d(xr, wr, Conv2dParams.Square(1, 1));
        Close.Assert(yr.ToArray<float>(), ToFloats(yh), tol, tol, dtype.Name());
    }

    internal static float[] Round(float[] v, DType dtype) =>
        v.Select(f => dtype == DType.Float16 ? (float)(Half)f : BFloat16.FromFloat(f).ToFloat()).ToArray();

    internal static Tensor HalfTensor(float[] v, DType dtype, Shape shape) => dtype == DType.Float16
        ? Tensor.FromSpan<Half>(v.Select(f => (Half)f).ToArray(), shape)
        : Tensor.FromSpan<BFloat16>(v.Select(BFloat16.FromFloat).ToArray(), shape);

    internal static float[] ToFloats(Tensor t) => t.DType == DType.Float16
        ? t.ToArray<Half>().Select(h => (float)h).ToArray()
        : t.ToArray<BFloat16>().Select(b => b.ToFloat()).ToArray();

    [Fact]
    public void Mismatched_channels_name_the_op_and_shapes()
    {
        using var x = Tensor.Zeros(new Shape(1, 3, 8, 8));
        using var w = Tensor.Zeros(new Shape(4, 5, 3, 3));
        var e = Assert.Throws<OpArgumentException>(() => Op.Conv2d(x, w));
        Assert.Contains("conv2d", e.Message);
        Assert.Contains("[1, 3, 8, 8]", e.Message);
        Assert.Contains("[4, 5, 3, 3]", e.Message);
    }

    [Fact]
    public void Wrong_bias_length_is_rejected()
    {
        using var x = Tensor.Zeros(new Shape(1, 3, 8, 8));
        using var w = Tensor.Zeros(new Shape(4, 3, 3, 3));
        using var b = Tensor.Zeros(new Shape(5));
        var e = Assert.Throws<OpArgumentException>(() => Op.Conv2d(x, w, epilogue: new Epilogue(b)));
        Assert.Contains("conv2d", e.Message);
        Assert.Contains("bias", e.Message);
    }

    [Fact]
    public void Activations_match_pytorch()
    {
        var a = Golden.RootElement.GetProperty("activations");
        float[] xs = a.GetProperty("x").EnumerateArray().Select(v => (float)v.GetDouble()).ToArray();
        float slope = (float)a.GetProperty("leaky_slope").GetDouble();
        float[] clamp = a.GetProperty("clamp").EnumerateArray().Select(v => (float)v.GetDouble()).ToArray();
        foreach (var kv in a.GetProperty("y").EnumerateObject())
        {
            var kind = Enum.Parse<UnaryKind>(kv.Name);
            var op = kind switch
            {
                UnaryKind.LeakyRelu => UnaryOp.LeakyRelu(slope),
                UnaryKind.Clamp => UnaryOp.Clamp(clamp[0], clamp[1]),
                _ => new UnaryOp(kind),
            };
            float[] expected = kv.Value.EnumerateArray().Select(v => v.ValueKind switch
            {
                JsonValueKind.Null => float.NaN,
                JsonValueKind.String => v.GetString() == "inf" ? float.PositiveInfinity : float.NegativeInfinity,
                _ => (float)v.GetDouble(),
            }).ToArray();
            float[] scalar = xs.Select(v => Activation.Apply(op, v)).ToArray();
            Close.Assert(expected, scalar, 1e-6, 1e-5, $"{kind} scalar");
            float[] vec = (float[])xs.Clone();
            Activation.Apply(op, vec.AsSpan());
            Close.Assert(expected, vec, 1e-6, 1e-5, $"{kind} span");
        }
    }
}
