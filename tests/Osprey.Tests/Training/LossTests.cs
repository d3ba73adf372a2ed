using System.Text.Json;
using Osprey.Detection.Training;
using Osprey.Detection.Training.Losses;
using Osprey.Detection.Training.Matching;
using Osprey.Tests.Support;

namespace Osprey.Tests.Training;

/// <summary>Losses and their closed-form gradients against torch autograd (tools/golden_train.py).</summary>
public class LossTests
{
    private static JsonElement Elem(string name) => TrainFixtures.Losses.GetProperty("elements").GetProperty(name);

    private static (float[] Loss, float[] Grad) Map(float[] x, Func<double, (double, double)> f)
    {
        var loss = new float[x.Length];
        var grad = new float[x.Length];
        for (int i = 0; i < x.Length; i++) (loss[i], grad[i]) = ((float)f(x[i]).Item1, (float)f(x[i]).Item2);
        return (loss, grad);
    }

    [Fact]
    public void Focal_loss_and_gradient_match_torchvision()
    {
        var x = Formula.Values("elem.x", 64).Select(v => v * 6f).ToArray();
        var t = Formula.Values("elem.t", 64).Select(v => v > 0.3f ? 1f : 0f).ToArray();
        var loss = new float[64];
        var grad = new float[64];
        for (int i = 0; i < 64; i++)
        {
            loss[i] = (float)LossFunctions.SigmoidFocal(x[i], t[i], 0.25, 2, out double g);
            grad[i] = (float)g;
        }
        Close.Assert(TrainFixtures.Floats(Elem("focal").GetProperty("loss")), loss, 1e-6, 1e-5, "focal loss");
        Close.Assert(TrainFixtures.Floats(Elem("focal").GetProperty("grad")), grad, 1e-6, 1e-5, "focal grad");
    }

    [Theory]
    [InlineData("0.11")]
    [InlineData("1.0")]
    public void Smooth_l1_and_l1_match_torch(string beta)
    {
        var p = Formula.Values("elem.p", 64).Select(v => v * 0.4f).ToArray();
        var q = Formula.Values("elem.q", 64).Select(v => v * 0.4f).ToArray();
        var d = p.Zip(q, (a, b) => (float)(a - b)).ToArray();
        double b = double.Parse(beta, System.Globalization.CultureInfo.InvariantCulture);
        var (sl, sg) = Map(d, v => (LossFunctions.SmoothL1(v, (float)b, out double g), g));
        var e = Elem("smooth_l1").GetProperty(beta);
        Close.Assert(TrainFixtures.Floats(e.GetProperty("loss")), sl, 1e-6, 1e-5, "smooth l1");
        Close.Assert(TrainFixtures.Floats(e.GetProperty("grad")), sg, 1e-6, 1e-5, "smooth l1 grad");
        var (ll, lg) = Map(d, v => (LossFunctions.L1(v, out double g), g));
        Close.Assert(TrainFixtures.Floats(Elem("l1").GetProperty("loss")), ll, 1e-6, 1e-5, "l1");
        Close.Assert(TrainFixtures.Floats(Elem("l1").GetProperty("grad")), lg, 0, 0, "l1 grad");
    }

    [Fact]
    public void Giou_loss_and_gradient_match_torchvision()
    {
        var e = Elem("giou");
        var p = TrainFixtures.Floats(e.GetProperty("pred"));
        var g = TrainFixtures.Floats(e.GetProperty("gt"));
        int n = p.Length / 4;
        var loss = new float[n];
        var grad = new float[p.Length];
        Span<double> pd = stackalloc double[4], gd = stackalloc double[4], gr = stackalloc double[4];
        for (int i = 0; i < n; i++)
        {
            for (int k = 0; k < 4; k++) { pd[k] = p[4 * i + k]; gd[k] = g[4 * i + k]; }
            loss[i] = (float)LossFunctions.GeneralizedIou(pd, gd, 1e-7, gr);
            for (int k = 0; k < 4; k++) grad[4 * i + k] = (float)gr[k];
        }
        Close.Assert(TrainFixtures.Floats(e.GetProperty("loss")), loss, 1e-6, 1e-5, "giou loss");
        Close.Assert(TrainFixtures.Floats(e.GetProperty("grad")), grad, 1e-6, 1e-4, "giou grad");
    }

    [Fact]
    public void Cross_entropy_and_gradient_match_torch()
    {
        var e = Elem("cross_entropy");
        var z = Formula.Values("elem.ce", 16 * 7).Select(v => v * 3f).ToArray();
        var labels = e.GetProperty("labels").EnumerateArray().Select(v => v.GetInt32()).ToArray();
        var loss = new float[16];
        var grad = new float[16 * 7];
        for (int i = 0; i < 16; i++) loss[i] = (float)LossFunctions.CrossEntropy(z.AsSpan(i * 7, 7), labels[i], 1, grad.AsSpan(i * 7, 7));
        Close.Assert(TrainFixtures.Floats(e.GetProperty("loss")), loss, 1e-6, 1e-5, "cross entropy");
        Close.Assert(TrainFixtures.Floats(e.GetProperty("grad")), grad, 1e-6, 1e-5, "cross entropy grad");
    }

    public static TheoryData<string> BatchCases() => ["retina_l1", "retina_smooth_l1_odtk", "retina_giou", "retina_empty", "ssd", "ssd_crowded"];

    [Theory, MemberData(nameof(BatchCases))]
    public void Batch_loss_and_gradients_match_torchvision_compute_loss(string name)
    {
        var c = TrainFixtures.Case(TrainFixtures.Losses, name);
        var setup = Setup(c, name);
        var clsGrad = new float[setup.Cls.Length];
        var boxGrad = new float[setup.Reg.Length];
        var loss = setup.Compute(setup.Cls, setup.Reg, clsGrad, boxGrad);
        Assert.Equal(c.GetProperty("cls_loss").GetDouble(), loss.Classification, 1e-5 * Math.Abs(c.GetProperty("cls_loss").GetDouble()) + 1e-6);
        Assert.Equal(c.GetProperty("box_loss_value").GetDouble(), loss.BoxRegression, 1e-5 * Math.Abs(c.GetProperty("box_loss_value").GetDouble()) + 1e-6);
        Close.Assert(TrainFixtures.Floats(c.GetProperty("cls_grad")), clsGrad, 1e-7, 1e-4, $"{name} classification grad");
        Close.Assert(TrainFixtures.Floats(c.GetProperty("box_grad")), boxGrad, 1e-7, 1e-4, $"{name} regression grad");
    }

    [Theory, MemberData(nameof(BatchCases))]
    public void Batch_gradients_agree_with_finite_differences(string name)
    {
        var c = TrainFixtures.Case(TrainFixtures.Losses, name);
        var s = Setup(c, name);
        var clsGrad = new float[s.Cls.Length];
        var boxGrad = new float[s.Reg.Length];
        s.Compute(s.Cls, s.Reg, clsGrad, boxGrad);
        var scratchC = new float[s.Cls.Length];
        var scratchB = new float[s.Reg.Length];
        // central differences of the float64 loss sums; inputs move by exactly representable steps
        foreach (bool onCls in new[] { true, false })
        {
            var x = onCls ? s.Cls : s.Reg;
            var grad = onCls ? clsGrad : boxGrad;
            for (int i = 0; i < x.Length; i += onCls ? 7 : 3)
            {
                float orig = x[i];
                const float h = 1f / 512;
                x[i] = orig + h;
                double up = Part(s.Compute(s.Cls, s.Reg, scratchC, scratchB), onCls);
                x[i] = orig - h;
                double down = Part(s.Compute(s.Cls, s.Reg, scratchC, scratchB), onCls);
                x[i] = orig;
                double fd = (up - down) / (2 * h);
                Assert.True(Math.Abs(fd - grad[i]) <= 1e-4 + 1e-3 * Math.Abs(fd),
                    $"{name} {(onCls ? "logit" : "code")} {i}: closed form {grad[i]}, finite difference {fd}");
            }
        }
    }

    private static double Part(DetectionLoss l, bool cls) => cls ? l.Classification : l.BoxRegression;

    private sealed record BatchSetup(float[] Cls, float[] Reg, Func<float[], float[], float[], float[], DetectionLoss> Compute);

    private static BatchSetup Setup(JsonElement c, string name)
    {
        int n = c.GetProperty("images").GetInt32(), k = c.GetProperty("classes").GetInt32();
        var anchors = TrainFixtures.Floats(c.GetProperty("anchors"));
        int a = anchors.Length / 4;
        var cls = Formula.Values(name + ".cls", (long)n * a * k).Select(v => v * 4f).ToArray();
        var reg = Formula.Values(name + ".reg", (long)n * a * 4).Select(v => v * 0.5f).ToArray();
        var boxes = c.GetProperty("boxes").EnumerateArray().ToArray();
        var labels = c.GetProperty("labels").EnumerateArray().ToArray();
        var targets = new DetectionTarget[n];
        for (int i = 0; i < n; i++)
            targets[i] = new DetectionTarget(TrainFixtures.Floats(boxes[i]), labels[i].EnumerateArray().Select(v => v.GetInt32()).ToArray());
        if (c.GetProperty("kind").GetString() == "ssd")
            return new BatchSetup(cls, reg, (x, r, gc, gb) => SsdLoss.Compute(x, r, anchors, targets, k, SsdLossOptions.Torchvision, gc, gb));
        var kind = c.GetProperty("box_loss").GetString() switch { "l1" => BoxLossKind.L1, "smooth_l1" => BoxLossKind.SmoothL1, _ => BoxLossKind.GIoU };
        var options = new RetinaNetLossOptions(BoxLoss: kind, Beta: (float)c.GetProperty("beta").GetDouble())
        {
            Matcher = c.GetProperty("odtk_matcher").GetBoolean() ? MatcherOptions.Odtk : MatcherOptions.RetinaNet,
        };
        return new BatchSetup(cls, reg, (x, r, gc, gb) => RetinaNetLoss.Compute(x, r, anchors, targets, k, options, gc, gb));
    }

    [Fact]
    public void Element_gradients_agree_with_finite_differences_in_float64()
    {
        const double h = 1e-6;
        foreach (double t in new[] { 0.0, 1.0, 0.3 })
            for (double x = -6; x <= 6; x += 0.37)
            {
                LossFunctions.SigmoidFocal(x, t, 0.25, 2, out double g);
                double fd = (LossFunctions.SigmoidFocal(x + h, t, 0.25, 2, out _) - LossFunctions.SigmoidFocal(x - h, t, 0.25, 2, out _)) / (2 * h);
                Assert.True(Math.Abs(fd - g) < 1e-7, $"focal x={x} t={t}: {g} vs {fd}");
            }
        for (double d = -1.3; d <= 1.3; d += 0.0731)
            foreach (double beta in new[] { 0.11, 1.0 })
            {
                LossFunctions.SmoothL1(d, beta, out double g);
                double fd = (LossFunctions.SmoothL1(d + h, beta, out _) - LossFunctions.SmoothL1(d - h, beta, out _)) / (2 * h);
                Assert.True(Math.Abs(fd - g) < 1e-6, $"smooth l1 d={d} beta={beta}: {g} vs {fd}");
            }
        var rng = new Random(7);
        Span<double> p = stackalloc double[4], q = stackalloc double[4], g4 = stackalloc double[4], tmp = stackalloc double[4];
        for (int trial = 0; trial < 200; trial++)
        {
            double x1 = rng.NextDouble() * 20, y1 = rng.NextDouble() * 20;
            p[0] = x1; p[1] = y1; p[2] = x1 + 1 + rng.NextDouble() * 20; p[3] = y1 + 1 + rng.NextDouble() * 20;
            double u1 = rng.NextDouble() * 20, v1 = rng.NextDouble() * 20;
            q[0] = u1; q[1] = v1; q[2] = u1 + 1 + rng.NextDouble() * 20; q[3] = v1 + 1 + rng.NextDouble() * 20;
            LossFunctions.GeneralizedIou(p, q, 1e-7, g4);
            for (int k = 0; k < 4; k++)
            {
                double o = p[k];
                p[k] = o + h;
                double up = LossFunctions.GeneralizedIou(p, q, 1e-7, tmp);
                p[k] = o - h;
                double down = LossFunctions.GeneralizedIou(p, q, 1e-7, tmp);
                p[k] = o;
                double fd = (up - down) / (2 * h);
                Assert.True(Math.Abs(fd - g4[k]) < 1e-6, $"giou trial {trial} coordinate {k}: {g4[k]} vs {fd}");
            }
        }
    }

    [Fact]
    public void Bad_inputs_are_refused_with_the_sizes()
    {
        var anchors = new float[8];
        var t = new[] { new DetectionTarget([0, 0, 1, 1], [7]) };
        var e = Assert.Throws<ArgumentException>(() => RetinaNetLoss.Compute(new float[6], new float[8], anchors, t, 3, RetinaNetLossOptions.Torchvision, new float[6], new float[8]));
        Assert.Contains("label 7", e.Message);
        e = Assert.Throws<ArgumentException>(() => RetinaNetLoss.Compute(new float[5], new float[8], anchors, t, 3, RetinaNetLossOptions.Torchvision, new float[5], new float[8]));
        Assert.Contains("need 6 logits", e.Message);
        Assert.Throws<ArgumentException>(() => SsdLoss.Compute(new float[6], new float[8], anchors, [], 3, SsdLossOptions.Torchvision, new float[6], new float[8]));
    }
}

public class HeadLossTests
{
    [Fact]
    public void Tensor_wrapper_equals_the_span_loss_in_any_dtype_and_applies_the_loss_scale()
    {
        var (anchors, cls, reg, targets, n, a, k) = TrainFixtures.RetinaHeads();
        var gc = new float[cls.Length];
        var gb = new float[reg.Length];
        var expected = RetinaNetLoss.Compute(cls, reg, anchors, targets, k, RetinaNetLossOptions.Torchvision, gc, gb);
        using var tc = Osprey.Core.Tensors.Tensor.FromSpan<float>(cls, new Osprey.Core.Tensors.Shape(n, a, k));
        using var tr = Osprey.Core.Tensors.Tensor.FromSpan<float>(reg, new Osprey.Core.Tensors.Shape(n, a, 4));
        using (var r = HeadLoss.RetinaNet(tc, tr, anchors, targets, RetinaNetLossOptions.Torchvision, gradScale: 1024))
        {
            Assert.Equal(expected, r.Loss);
            Close.Assert(gc.Select(v => v * 1024).ToArray(), r.ClassGrad.ToArray<float>(), 0, 1e-6, "scaled class grad");
            Close.Assert(gb.Select(v => v * 1024).ToArray(), r.BoxGrad.ToArray<float>(), 0, 1e-6, "scaled box grad");
        }
        using var hc = Osprey.Core.Ops.Op.Cast(tc, Osprey.Core.Tensors.DType.Float16);
        using var hr = Osprey.Core.Ops.Op.Cast(tr, Osprey.Core.Tensors.DType.Float16);
        using var h = HeadLoss.RetinaNet(hc, hr, anchors, targets, RetinaNetLossOptions.Torchvision);
        Assert.Equal(Osprey.Core.Tensors.DType.Float16, h.ClassGrad.DType);
        Assert.Equal(expected.Total, h.Loss.Total, 1e-2 * expected.Total);
        Assert.Throws<ArgumentException>(() => HeadLoss.Ssd(tr, tc, anchors, targets, SsdLossOptions.Torchvision));
    }

    [Fact]
    public void Device_loss_entry_points_refuse_what_the_fused_kernels_cannot_read()
    {
        var (anchors, cls, reg, targets, n, a, k) = TrainFixtures.RetinaHeads();
        using var tc = Osprey.Core.Tensors.Tensor.FromSpan<float>(cls, new Osprey.Core.Tensors.Shape(n, a, k));
        using var tr = Osprey.Core.Tensors.Tensor.FromSpan<float>(reg, new Osprey.Core.Tensors.Shape(n, a, 4));
        using var ta = Osprey.Core.Tensors.Tensor.FromSpan<float>(anchors, new Osprey.Core.Tensors.Shape(a, 4));
        using var ic = Osprey.Core.Ops.Op.Cast(tc, Osprey.Core.Tensors.DType.Int32);
        // host tensors and integer ones never take the fused path: the entry points with device anchors say why
        var e = Assert.Throws<ArgumentException>(() => HeadLoss.RetinaNet(tc, tr, ta, targets, RetinaNetLossOptions.Torchvision));
        Assert.Contains("float32 on cpu", e.Message);
        e = Assert.Throws<ArgumentException>(() => HeadLoss.RetinaNet(ic, tr, ta, targets, RetinaNetLossOptions.Torchvision));
        Assert.Contains("int32", e.Message);
        e = Assert.Throws<ArgumentException>(() => HeadLoss.Ssd(tc, tr, ta, targets, SsdLossOptions.Torchvision));
        Assert.Contains("CUDA head outputs", e.Message);
    }

    [Theory]
    [InlineData("retina_l1")]
    [InlineData("retina_smooth_l1_odtk")]
    [InlineData("retina_giou")]
    [InlineData("retina_empty")]
    public void Focal_loss_composed_of_ops_equals_the_host_loss(string name)
    {
        var c = TrainFixtures.Case(TrainFixtures.Losses, name);
        var anchors = TrainFixtures.Floats(c.GetProperty("anchors"));
        int n = 2, a = anchors.Length / 4, k = 5;
        var cls = Formula.Values(name + ".cls", (long)n * a * k).Select(v => v * 4f).ToArray();
        var reg = Formula.Values(name + ".reg", (long)n * a * 4).Select(v => v * 0.5f).ToArray();
        var boxes = c.GetProperty("boxes").EnumerateArray().ToArray();
        var labels = c.GetProperty("labels").EnumerateArray().ToArray();
        var targets = Enumerable.Range(0, n).Select(i => new DetectionTarget(TrainFixtures.Floats(boxes[i]), labels[i].EnumerateArray().Select(v => v.GetInt32()).ToArray())).ToArray();
        var kind = c.GetProperty("box_loss").GetString() switch { "l1" => BoxLossKind.L1, "smooth_l1" => BoxLossKind.SmoothL1, _ => BoxLossKind.GIoU };
        var options = new RetinaNetLossOptions(BoxLoss: kind, Beta: (float)c.GetProperty("beta").GetDouble())
        {
            Matcher = c.GetProperty("odtk_matcher").GetBoolean() ? MatcherOptions.Odtk : MatcherOptions.RetinaNet,
        };
        using var tc = Osprey.Core.Tensors.Tensor.FromSpan<float>(cls, new Osprey.Core.Tensors.Shape(n, a, k));
        using var tr = Osprey.Core.Tensors.Tensor.FromSpan<float>(reg, new Osprey.Core.Tensors.Shape(n, a, 4));
        using var host = HeadLoss.RetinaNet(tc, tr, anchors, targets, options, gradScale: 8, focalOnDevice: false);
        using var ops = HeadLoss.RetinaNet(tc, tr, anchors, targets, options, gradScale: 8, focalOnDevice: true);
        Assert.Equal(c.GetProperty("cls_loss").GetDouble(), ops.Loss.Classification, 1e-5 * c.GetProperty("cls_loss").GetDouble());
        Assert.Equal(host.Loss.BoxRegression, ops.Loss.BoxRegression, 1e-12);
        Close.Assert(host.ClassGrad.ToArray<float>(), ops.ClassGrad.ToArray<float>(), 1e-6, 1e-4, $"{name} op-composed focal grad");
        Close.Assert(host.BoxGrad.ToArray<float>(), ops.BoxGrad.ToArray<float>(), 0, 0, $"{name} box grad");
    }
}
