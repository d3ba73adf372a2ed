using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Training.Optim;
using Osprey.Tests.Support;

namespace Osprey.Tests.Training;

/// <summary>SGD, AdamW, the ODTK schedule and gradient clipping against torch 1.13 (tools/golden_train.py).</summary>
public class OptimizerTests
{
    private static int[][] Shapes => TrainFixtures.Optim.GetProperty("shapes").EnumerateArray()
        .Select(s => s.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();

    private static Tensor FormulaTensor(string key, int[] shape, float scale = 1f, Device? device = null)
    {
        var s = new Shape(shape);
        return Tensor.FromSpan<float>(Formula.Values(key, s.Numel).Select(v => v * scale).ToArray(), s, device);
    }

    public static TheoryData<string> Cases() => ["sgd", "sgd_dampening", "sgd_plain", "sgd_odtk_schedule", "adamw", "adamw_amsgrad"];

    private static Optimizer Make(string name) => name switch
    {
        "sgd" or "sgd_odtk_schedule" => new Sgd(new SgdOptions(0.01, 0.9, 0, 1e-4)),
        "sgd_dampening" => new Sgd(new SgdOptions(0.05, 0.9, 0.1, 1e-3)),
        "sgd_plain" => new Sgd(new SgdOptions(0.1, 0, 0, 0)),
        "adamw" => new AdamW(new AdamWOptions(1e-2, 0.9, 0.999, 1e-8, 1e-2)),
        "adamw_amsgrad" => new AdamW(new AdamWOptions(3e-3, 0.8, 0.99, 1e-6, 0.1, AmsGrad: true)),
        _ => throw new ArgumentException(name),
    };

    [Theory, MemberData(nameof(Cases))]
    public void Six_steps_match_torch(string name) => Run(name, DType.Float32, 2e-6, 1e-5);

    /// <summary>float16 parameters with FP32 master weights: the parameters are the torch (float32) result rounded to half.</summary>
    [Theory]
    [InlineData("sgd")]
    [InlineData("adamw")]
    public void Half_parameters_follow_fp32_master_weights(string name) => Run(name, DType.Float16, 1e-3, 1e-3);

    [Fact]
    public void Bfloat16_parameters_follow_fp32_master_weights() => Run("sgd_dampening", DType.BFloat16, 8e-3, 8e-3);

    internal static void Run(string name, DType dtype, double atol, double rtol, Device? device = null, bool multiTensor = false)
    {
        var c = TrainFixtures.Case(TrainFixtures.Optim, name);
        var shapes = Shapes;
        var ps = new List<Tensor>();
        using var opt = Make(name);
        var schedule = name == "sgd_odtk_schedule" ? new LearningRateSchedule(0.01, 2, [3, 5]) : null;
        var lrs = c.GetProperty("lrs").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        try
        {
            // float16 master weights start from the rounded parameters, so feed torch's float32 start only in float32
            for (int i = 0; i < shapes.Length; i++)
            {
                using var p32 = FormulaTensor($"param{i}", shapes[i], 1f, device);
                ps.Add(dtype == DType.Float32 ? Op.Contiguous(p32) : Op.Cast(p32, dtype));
            }
            for (int step = 0; step < lrs.Length; step++)
            {
                if (schedule is not null) opt.LearningRate = schedule.Rate(step);
                Assert.Equal(lrs[step], opt.LearningRate, 1e-12);
                var pairs = new List<ParamGrad>();
                for (int i = 0; i < shapes.Length; i++) pairs.Add(new ParamGrad(ps[i], FormulaTensor($"grad{i}.step{step}", shapes[i], 0.5f, device)));
                if (multiTensor)
                {
                    var outcome = opt.TryStepMultiTensor(ps, pairs.Select(pg => pg.Grad).ToArray(), 1f, false, 0);
                    Assert.True(outcome is { Taken: true }, $"{name}: the multi-tensor step did not apply");
                }
                else opt.Step(pairs);
                foreach (var pg in pairs) pg.Grad.Dispose();
            }
            var expected = c.GetProperty("params").EnumerateArray().ToArray();
            for (int i = 0; i < shapes.Length; i++)
            {
                Assert.Equal(dtype, ps[i].DType);
                Assert.Equal(device ?? Device.Cpu, ps[i].Device);
                using var p = Op.Cast(ps[i], DType.Float32);
                Close.Assert(TrainFixtures.Floats(expected[i]), p.ToArray<float>(), atol, rtol, $"{name} parameter {i}");
            }
        }
        finally
        {
            foreach (var p in ps) p.Dispose();
        }
    }

    [Fact]
    public void Optimizer_state_survives_the_callers_scopes()
    {
        using (var outer = new TensorScope())
        {
            var p = Tensor.Zeros(new Shape(4));
            using var opt = new Sgd(new SgdOptions(0.1, 0.9, 0, 0));
            for (int s = 0; s < 3; s++)
                using (var inner = new TensorScope())
                    opt.Step([new ParamGrad(p, Tensor.Full(new Shape(4), 1.0))]);
            // buf: 1, 1.9, 2.71 -> p = -0.1 (1 + 1.9 + 2.71)
            Assert.All(p.ToArray<float>(), v => Assert.Equal(-0.561f, v, 1e-6f));
        }
    }

    [Fact]
    public void Odtk_schedule_matches_its_lambda()
    {
        var expected = TrainFixtures.Optim.GetProperty("odtk_lr").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        long[] its = [0, 1, 500, 999, 1000, 1001, 59999, 60000, 79999, 80000, 89999];
        for (int i = 0; i < its.Length; i++) Assert.Equal(expected[i], LearningRateSchedule.Odtk.Factor(its[i]), 1e-15);
        Assert.Equal(0.01 * 0.55, LearningRateSchedule.Odtk.Rate(500), 1e-15);
    }

    [Fact]
    public void Clip_by_global_norm_matches_torch()
    {
        var clip = TrainFixtures.Optim.GetProperty("clip");
        var shapes = Shapes;
        var gs = shapes.Select((s, i) => FormulaTensor($"clip{i}", s, 2f)).ToList();
        try
        {
            double norm = Gradients.ClipByGlobalNorm(gs, clip.GetProperty("max_norm").GetDouble());
            Assert.Equal(clip.GetProperty("norm").GetDouble(), norm, 1e-5 * norm);
            var expected = clip.GetProperty("grads").EnumerateArray().ToArray();
            for (int i = 0; i < gs.Count; i++) Close.Assert(TrainFixtures.Floats(expected[i]), gs[i].ToArray<float>(), 1e-6, 1e-5, $"clipped grad {i}");
        }
        finally { foreach (var g in gs) g.Dispose(); }
    }

    [Fact]
    public void All_finite_detects_inf_and_nan_in_any_dtype()
    {
        using var a = Tensor.FromArray(new float[] { 1, 2, 3 }, 3);
        using var b = Tensor.FromArray(new float[] { 1, float.PositiveInfinity, 3 }, 3);
        using var c = Tensor.FromArray(new float[] { float.NaN, 0, 0 }, 3);
        using var h = Op.Cast(b, DType.Float16);
        Assert.True(Gradients.AllFinite([a]));
        Assert.False(Gradients.AllFinite([a, b]));
        Assert.False(Gradients.AllFinite([c]));
        Assert.False(Gradients.AllFinite([h]));
        // huge finite values whose sum would overflow are still finite
        using var big = Tensor.Full(new Shape(8), 3e38);
        Assert.True(Gradients.AllFinite([big]));
    }

    /// <summary>torch.cuda.amp.GradScaler's update rule (its _amp_update_scale_ kernel has no CPU build in torch 1.13, so the
    /// expected sequence is written out): back off by 0.5 and reset on inf; grow by 2 after growth_interval clean steps.</summary>
    [Fact]
    public void Grad_scaler_skips_nonfinite_steps_backs_off_and_grows()
    {
        var scaler = new GradScaler(new GradScalerOptions(InitScale: 1024, GrowthInterval: 3));
        using var p = Tensor.Zeros(new Shape(2));
        using var opt = new Sgd(new SgdOptions(1, 0, 0, 0));
        bool[] overflow = [false, true, false, false, false, false, true, false];
        float[] scales = [1024, 512, 512, 512, 1024, 1024, 512, 512];
        int[] trackers = [1, 0, 1, 2, 0, 1, 0, 1];
        float expectedP = 0;
        for (int s = 0; s < overflow.Length; s++)
        {
            float scale = scaler.Scale;
            using var g = Tensor.FromArray(new float[] { overflow[s] ? float.PositiveInfinity : scale * 0.5f, scale * 0.25f }, 2);
            bool stepped = scaler.Step(opt, [new ParamGrad(p, g)]);
            Assert.Equal(!overflow[s], stepped);
            if (stepped) expectedP -= 0.5f;
            Assert.Equal(scales[s], scaler.Scale);
            Assert.Equal(trackers[s], scaler.GrowthTracker);
            Assert.Equal(expectedP, p.ToArray<float>()[0], 1e-6f);
        }
        Assert.Equal(2, scaler.Skipped);
        var big = new GradScaler(new GradScalerOptions(InitScale: 3e38, GrowthInterval: 1));
        big.Update(false);
        Assert.Equal(3e38f, big.Scale);
    }

    [Fact]
    public void Bad_settings_and_mismatched_parameters_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd(new SgdOptions(-1)));
        Assert.Throws<ArgumentException>(() => new Sgd(new SgdOptions(0.1, 0, Nesterov: true)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AdamW(new AdamWOptions(Beta1: 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new GradScaler(new GradScalerOptions(BackoffFactor: 2)));
        using var opt = new Sgd(new SgdOptions());
        using var p = Tensor.Zeros(new Shape(3));
        using var g = Tensor.Zeros(new Shape(4));
        var e = Assert.Throws<ArgumentException>(() => opt.Step([new ParamGrad(p, g)]));
        Assert.Contains("[3]", e.Message);
    }
}
