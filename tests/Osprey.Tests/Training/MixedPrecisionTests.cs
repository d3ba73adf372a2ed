using Osprey.Core.Tensors;
using Osprey.Detection.Training.Loop;
using Osprey.Detection.Training.Optim;
using Xunit;

namespace Osprey.Tests.Training;

/// <summary><see cref="MixedPrecision"/>'s step on the CPU (float32 tensors; the scaler's logic does not depend on the dtype):
/// scaled gradients are unscaled exactly before SGD, an injected inf or NaN skips the step and halves the scale, fp32 and bf16
/// never scale; the options refuse 16-bit training on the CPU. The 16-bit runs themselves are in <see cref="MixedPrecisionGpuTests"/>.</summary>
public sealed class MixedPrecisionTests
{
    private static readonly float[] s_p0 = [0.5f, -1.25f, 2f, 0.125f, -0.75f, 3f];
    private static readonly float[] s_g = [0.01f, -0.02f, 0.5f, -1f, 0.003f, 0.25f];

    private static float[] Times(float[] x, float f) => Array.ConvertAll(x, v => v * f);

    [Fact]
    public void AmpUnscalesThenSteps_AndInjectedInfSkipsTheStepAndHalvesTheScale()
    {
        var mp = new MixedPrecision(TrainPrecision.Amp);
        Assert.Equal(65536.0, mp.LossScale);
        using var p = Tensor.FromSpan<float>(s_p0, new Shape(2, 3));
        using var reference = Tensor.FromSpan<float>(s_p0, new Shape(2, 3));
        using var sgd = new Sgd(new SgdOptions(0.1, 0.9, 0, 1e-4));
        using var sgdRef = new Sgd(new SgdOptions(0.1, 0.9, 0, 1e-4));

        // a clean step: the gradient arrives times 65536 and is unscaled exactly (a power of two) before SGD
        using (var g = Tensor.FromSpan<float>(Times(s_g, 65536f), new Shape(2, 3)))
        using (var gRef = Tensor.FromSpan<float>(s_g, new Shape(2, 3)))
        {
            var r = mp.Step(sgd, [p], [g], clipNorm: 0);
            Assert.True(r.Taken);
            sgdRef.Step([new ParamGrad(reference, gRef)]);
        }
        Assert.Equal(reference.ToArray<float>(), p.ToArray<float>());
        Assert.Equal(65536f, mp.Scaler!.Scale);
        Assert.Equal(1, mp.Scaler.GrowthTracker);

        // an inf in one gradient: no step (parameters and optimiser untouched), the scale halves, the tracker resets
        var before = p.ToArray<float>();
        var bad = Times(s_g, 32768f);
        bad[3] = float.PositiveInfinity;
        using (var g = Tensor.FromSpan<float>(bad, new Shape(2, 3)))
        {
            var r = mp.Step(sgd, [p], [g], clipNorm: 10);
            Assert.False(r.Taken);
            Assert.True(double.IsNaN(r.GradNorm));
        }
        Assert.Equal(before, p.ToArray<float>());
        Assert.Equal(1, sgd.Steps);
        Assert.Equal(32768f, mp.Scaler.Scale);
        Assert.Equal(0, mp.Scaler.GrowthTracker);
        Assert.Equal(1, mp.Scaler.Skipped);

        // a NaN: skipped again
        bad[3] = float.NaN;
        using (var g = Tensor.FromSpan<float>(bad, new Shape(2, 3))) Assert.False(mp.Step(sgd, [p], [g], 0).Taken);
        Assert.Equal(16384f, mp.Scaler.Scale);
        Assert.Equal(before, p.ToArray<float>());

        // the next clean step at the lowered scale matches the reference's second step
        using (var g = Tensor.FromSpan<float>(Times(s_g, 16384f), new Shape(2, 3)))
        using (var gRef = Tensor.FromSpan<float>(s_g, new Shape(2, 3)))
        {
            Assert.True(mp.Step(sgd, [p], [g], 0).Taken);
            sgdRef.Step([new ParamGrad(reference, gRef)]);
        }
        Assert.Equal(reference.ToArray<float>(), p.ToArray<float>());
    }

    [Fact]
    public void ClippingRunsOnUnscaledGradients()
    {
        var mp = new MixedPrecision(TrainPrecision.Amp);
        using var p = Tensor.FromSpan<float>(s_p0, new Shape(6));
        using var g = Tensor.FromSpan<float>(Times(s_g, 65536f), new Shape(6));
        using var sgd = new Sgd(new SgdOptions(1, 0, 0, 0));
        var r = mp.Step(sgd, [p], [g], clipNorm: 0.5);
        double norm = Math.Sqrt(s_g.Sum(v => (double)v * v));
        Assert.Equal(norm, r.GradNorm, 1e-6);
        // plain SGD with lr 1: p - g * 0.5 / (norm + 1e-6)
        var got = p.ToArray<float>();
        for (int i = 0; i < got.Length; i++) Assert.Equal(s_p0[i] - s_g[i] * 0.5 / (norm + 1e-6), got[i], 1e-5);
    }

    [Fact]
    public void Fp32AndBf16DoNotScale()
    {
        Assert.Null(new MixedPrecision(TrainPrecision.Fp32).Scaler);
        Assert.Equal(1.0, new MixedPrecision(TrainPrecision.Bf16).LossScale);
        var mp = new MixedPrecision(TrainPrecision.Fp32);
        Assert.Throws<InvalidOperationException>(mp.SkipNonFinite);
        using var p = Tensor.FromSpan<float>(s_p0, new Shape(6));
        using var g = Tensor.FromSpan<float>(s_g, new Shape(6));
        using var sgd = new Sgd(new SgdOptions(1, 0, 0, 0));
        Assert.True(mp.Step(sgd, [p], [g], 0).Taken);
        var got = p.ToArray<float>();
        for (int i = 0; i < got.Length; i++) Assert.Equal(s_p0[i] - s_g[i], got[i]);
    }

    [Fact]
    public void OptionsParseAndRefuse16BitOnTheCpu()
    {
        Assert.Equal(TrainPrecision.Amp, TrainPrecisions.Parse("amp"));
        Assert.Equal(TrainPrecision.Bf16, TrainPrecisions.Parse("BF16"));
        Assert.Equal(DType.Float16, TrainPrecision.Amp.ComputeType());
        Assert.Equal(DType.BFloat16, TrainPrecision.Bf16.ComputeType());
        Assert.Contains("--precision", Assert.Throws<ArgumentException>(() => TrainPrecisions.Parse("fp8")).Message);
        var o = new TrainOptions { Architecture = "retinanet_resnet18_fpn", Precision = TrainPrecision.Amp };
        Assert.Contains("--device cuda", Assert.Throws<ArgumentException>(o.Validate).Message);
        (o with { Device = Device.Cuda(0) }).Validate();
    }

    [Fact]
    public void ScalerRestoreChecksItsValues()
    {
        var s = new GradScaler();
        s.Restore(1024f, 7);
        Assert.Equal(1024f, s.Scale);
        Assert.Equal(7, s.GrowthTracker);
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Restore(float.PositiveInfinity, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Restore(2f, 2000));
    }
}
