using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Training.Loop;
using Osprey.Detection.Training.Optim;
using Osprey.Tests.Cuda;
using Osprey.Tests.Support;

namespace Osprey.Tests.Training;

/// <summary>
/// The multi-tensor optimiser step (<see cref="Optimizer.TryStepMultiTensor"/>, Kernels/optim.cu) on a CUDA GPU against the
/// per-tensor path on the CPU (skipped without a GPU): seeded parameters of odd sizes (one crossing a chunk boundary, one
/// element, channels-last float16/bfloat16 ones, float32 ones among 16-bit ones), the same gradient bits on both sides; amp
/// steps with and without clipping, an injected inf and NaN (skipped on the device, scale halved), SGD (momentum, weight
/// decay, dampening, Nesterov) and AdamW (amsgrad); parameters, FP32 masters, state buffers and norms compared; the
/// optimiser goldens of torch through the multi-tensor path; a leak check.
/// </summary>
public class MultiTensorGpuTests
{
    private static readonly (int[] Shape, DType DType, bool ChannelsLast)[] s_params =
    [
        ([7, 3, 3, 3], DType.Float16, true),
        ([129], DType.Float16, false),
        ([1], DType.Float32, false),
        ([5, 11], DType.BFloat16, false),
        ([3, 2, 5, 5], DType.BFloat16, true),
        ([10001], DType.Float32, false),
        ([17, 1, 1, 1], DType.Float16, true),
        ([9, 8193], DType.Float16, false),
    ];

    private static float[] Values(int n, int seed, double scale)
    {
        var rng = new Random(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        return v;
    }

    /// <summary>The parameter set on the CPU (contiguous) and on the GPU (channels-last where asked), the same values.</summary>
    private static (List<Tensor> Cpu, List<Tensor> Gpu) Params(bool uniform, int seed)
    {
        var cpu = new List<Tensor>();
        var gpu = new List<Tensor>();
        for (int i = 0; i < s_params.Length; i++)
        {
            var (shape, dtype, cl) = s_params[i];
            var s = new Shape(shape);
            var dt = uniform ? DType.Float32 : dtype;
            using var f = Tensor.FromSpan<float>(Values((int)s.Numel, seed + i, 1), s);
            var c = Op.Cast(f, dt);
            cpu.Add(c);
            using var g = Op.To(c, Gpu.Device);
            gpu.Add(cl && !uniform ? Op.Contiguous(g, MemoryFormat.ChannelsLast) : Op.Contiguous(g));
        }
        return (cpu, gpu);
    }

    /// <summary>Gradients of the parameters' dtypes, times <paramref name="scale"/>, identical bits on both devices; one element
    /// of parameter 3 replaced by <paramref name="poison"/> when given.</summary>
    private static (Tensor[] Cpu, Tensor[] Gpu) Grads(List<Tensor> ps, int seed, double scale, float? poison = null)
    {
        var cpu = new Tensor[ps.Count];
        var gpu = new Tensor[ps.Count];
        for (int i = 0; i < ps.Count; i++)
        {
            var v = Values((int)ps[i].Numel, 1000 * seed + i, scale);
            if (poison is { } bad && i == 3) v[7] = bad;
            using var f = Tensor.FromSpan<float>(v, ps[i].Shape);
            cpu[i] = Op.Cast(f, ps[i].DType);
            gpu[i] = Op.To(cpu[i], Gpu.Device);
        }
        return (cpu, gpu);
    }

    private static void Compare(List<Tensor> cpu, List<Tensor> gpu, Optimizer oc, Optimizer og, double atol, double rtol, string what)
    {
        for (int i = 0; i < cpu.Count; i++)
        {
            Assert.Equal(cpu[i].DType, gpu[i].DType);
            using var a = Op.Cast(cpu[i], DType.Float32);
            using var b = Op.Cast(gpu[i], DType.Float32);
            Close.Assert(a.ToArray<float>(), b.ToArray<float>(), atol, rtol, $"{what}: parameter {i}");
            var ma = oc.Master(i);
            var mb = og.Master(i);
            Assert.Equal(ma is null, mb is null);
            if (ma is not null) Close.Assert(ma.ToArray<float>(), mb!.ToArray<float>(), atol, rtol, $"{what}: master {i}");
        }
        var sa = oc.StateBuffers().OrderBy(e => (e.Index, e.Name)).ToList();
        var sb = og.StateBuffers().OrderBy(e => (e.Index, e.Name)).ToList();
        Assert.Equal(sa.Select(e => (e.Index, e.Name)), sb.Select(e => (e.Index, e.Name)));
        for (int k = 0; k < sa.Count; k++)
            Close.Assert(sa[k].Value.ToArray<float>(), sb[k].Value.ToArray<float>(), atol, rtol, $"{what}: state {sa[k].Name} of {sa[k].Index}");
    }

    private static void Dispose(IEnumerable<Tensor> ts)
    {
        foreach (var t in ts) t.Dispose();
    }

    /// <summary>One step on both sides; returns the two results.</summary>
    private static (PrecisionStep Cpu, PrecisionStep Gpu) StepBoth(MixedPrecision mc, MixedPrecision mg, Optimizer oc, Optimizer og,
        List<Tensor> pc, List<Tensor> pg, int seed, double scale, double clip, float? poison = null)
    {
        var (gc, gg) = Grads(pc, seed, scale, poison);
        try
        {
            return (mc.Step(oc, pc, gc, clip), mg.Step(og, pg, gg, clip));
        }
        finally
        {
            Dispose(gc);
            Dispose(gg);
        }
    }

    public static TheoryData<string> Optimizers() => ["sgd", "sgd_dampening", "sgd_nesterov", "sgd_plain", "adamw", "adamw_amsgrad"];

    private static Optimizer Make(string name) => name switch
    {
        "sgd" => new Sgd(new SgdOptions(0.01, 0.9, 0, 1e-4)),
        "sgd_dampening" => new Sgd(new SgdOptions(0.05, 0.9, 0.1, 1e-3)),
        "sgd_nesterov" => new Sgd(new SgdOptions(0.02, 0.8, 0, 1e-2, Nesterov: true)),
        "sgd_plain" => new Sgd(new SgdOptions(0.1, 0, 0, 0)),
        "adamw" => new AdamW(new AdamWOptions(1e-2, 0.9, 0.999, 1e-8, 1e-2)),
        "adamw_amsgrad" => new AdamW(new AdamWOptions(3e-3, 0.8, 0.99, 1e-6, 0.1, AmsGrad: true)),
        _ => throw new ArgumentException(name),
    };

    [GpuTheory, MemberData(nameof(Optimizers))]
    public void Amp_steps_equal_the_per_tensor_cpu_path(string name)
    {
        var (pc, pg) = Params(uniform: false, seed: 11);
        using var oc = Make(name);
        using var og = Make(name);
        var mc = new MixedPrecision(TrainPrecision.Amp, multiTensor: false);
        var mg = new MixedPrecision(TrainPrecision.Amp);
        try
        {
            // no clipping: the factor is the exact power-of-two unscale, so the update is the per-tensor ops' bit for bit
            var (a, b) = StepBoth(mc, mg, oc, og, pc, pg, 1, 0.5 * 65536, clip: 0);
            Assert.True(a.Taken && b.Taken);
            Assert.True(double.IsNaN(b.GradNorm));
            Compare(pc, pg, oc, og, 0, 0, $"{name} step 1");

            // clipping active (norm ~ 50 > 2): the norm agrees to summation order, so the update to float32 rounding
            (a, b) = StepBoth(mc, mg, oc, og, pc, pg, 2, 0.5 * 65536, clip: 2);
            Assert.True(a.Taken && b.Taken);
            Assert.True(a.GradNorm > 2);
            Assert.Equal(a.GradNorm, b.GradNorm, 1e-6 * a.GradNorm);
            Compare(pc, pg, oc, og, 1e-6, 1e-5, $"{name} step 2");

            // an inf, then a NaN: skipped on both sides (nothing written), the scale halves each time
            var before = pg.Select(p => { using var f = Op.Cast(p, DType.Float32); return f.ToArray<float>(); }).ToList();
            (a, b) = StepBoth(mc, mg, oc, og, pc, pg, 3, 0.5 * 65536, clip: 2, poison: float.PositiveInfinity);
            Assert.False(a.Taken);
            Assert.False(b.Taken);
            Assert.True(double.IsNaN(b.GradNorm));
            (a, b) = StepBoth(mc, mg, oc, og, pc, pg, 4, 0.5 * 32768, clip: 0, poison: float.NaN);
            Assert.False(a.Taken || b.Taken);
            Assert.Equal(16384f, mg.Scaler!.Scale);
            Assert.Equal(mc.Scaler!.Scale, mg.Scaler.Scale);
            Assert.Equal(2, mg.Scaler.Skipped);
            Assert.Equal(2, og.Steps);
            for (int i = 0; i < pg.Count; i++)
            {
                using var f = Op.Cast(pg[i], DType.Float32);
                Assert.Equal(before[i], f.ToArray<float>());
            }

            // clean again at the lowered scale
            (a, b) = StepBoth(mc, mg, oc, og, pc, pg, 5, 0.5 * 16384, clip: 2);
            Assert.True(a.Taken && b.Taken);
            Assert.Equal(a.GradNorm, b.GradNorm, 1e-6 * a.GradNorm);
            Compare(pc, pg, oc, og, 2e-6, 2e-5, $"{name} step 5");
            Assert.Equal(3, og.Steps);
        }
        finally
        {
            Dispose(pc);
            Dispose(pg);
        }
    }

    [GpuFact]
    public void Float32_and_bf16_runs_without_a_scaler_equal_the_cpu_path()
    {
        foreach (bool uniform in new[] { true, false })
        {
            var (pc, pg) = Params(uniform, seed: 23);
            using var oc = Make("adamw_amsgrad");
            using var og = Make("adamw_amsgrad");
            var precision = uniform ? TrainPrecision.Fp32 : TrainPrecision.Bf16;
            var mc = new MixedPrecision(precision, multiTensor: false);
            var mg = new MixedPrecision(precision);
            try
            {
                // no clip, no scaler: no reduction, no wait; then clipping
                var (a, b) = StepBoth(mc, mg, oc, og, pc, pg, 1, 0.3, clip: 0);
                Assert.True(a.Taken && b.Taken);
                Compare(pc, pg, oc, og, 0, 0, $"{precision} step 1");
                (a, b) = StepBoth(mc, mg, oc, og, pc, pg, 2, 0.3, clip: 1);
                Assert.Equal(a.GradNorm, b.GradNorm, 1e-6 * a.GradNorm);
                Compare(pc, pg, oc, og, 1e-6, 1e-5, $"{precision} step 2");
            }
            finally
            {
                Dispose(pc);
                Dispose(pg);
            }
        }
    }

    [GpuTheory, MemberData(nameof(OptimizerTests.Cases), MemberType = typeof(OptimizerTests))]
    public void Multi_tensor_steps_match_torch(string name) =>
        OptimizerTests.Run(name, DType.Float32, 2e-6, 1e-5, Gpu.Device, multiTensor: true);

    [GpuFact]
    public void Half_parameters_through_the_multi_tensor_path_follow_fp32_masters() =>
        OptimizerTests.Run("adamw", DType.Float16, 1e-3, 1e-3, Gpu.Device, multiTensor: true);

    [GpuFact]
    public void Refuses_what_it_cannot_address_and_frees_everything()
    {
        using var opt = Make("sgd");
        using var p = Tensor.Zeros(new Shape(4, 3), DType.Float32, Gpu.Device);
        using var g = Tensor.Zeros(new Shape(3, 4), DType.Float32, Gpu.Device);
        using var gt = g.Transpose(0, 1);
        Assert.Null(opt.TryStepMultiTensor([p], [gt], 1f, false, 0)); // a strided gradient
        using var pCpu = Tensor.Zeros(new Shape(4), DType.Float32);
        using var gCpu = Tensor.Zeros(new Shape(4), DType.Float32);
        Assert.Null(opt.TryStepMultiTensor([pCpu], [gCpu], 1f, false, 0)); // the CPU
        Assert.Equal(0, opt.Steps);
        Assert.Throws<ArgumentOutOfRangeException>(() => opt.TryStepMultiTensor([p], [gt], 0f, false, 0));

        var backend = Gpu.Backend;
        RunOnce(); // warm up (kernel modules, allocator pools)
        backend.Synchronize();
        long live = backend.Memory.LiveBytes;
        RunOnce();
        backend.Synchronize();
        Assert.Equal(live, backend.Memory.LiveBytes);

        static void RunOnce()
        {
            var (pc, pg) = Params(uniform: false, seed: 5);
            try
            {
                using var o = Make("adamw_amsgrad");
                var mp = new MixedPrecision(TrainPrecision.Amp);
                var (gc, gg) = Grads(pg, 9, 100);
                Assert.True(mp.Step(o, pg, gg, 10).Taken);
                Dispose(gc);
                Dispose(gg);
            }
            finally
            {
                Dispose(pc);
                Dispose(pg);
            }
        }
    }
}
