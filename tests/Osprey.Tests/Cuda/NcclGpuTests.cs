using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Cuda.Nccl;
using Osprey.Cuda.Native;
using Osprey.Cuda.Runtime;
using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Loop;
using Osprey.Tests.Training;
using Xunit;

namespace Osprey.Tests.Cuda;

/// <summary>A test that needs two CUDA GPUs; skipped with the reason on machines with fewer.</summary>
public sealed class MultiGpuFactAttribute : FactAttribute
{
    public MultiGpuFactAttribute()
    {
        if (Gpu.SkipReason is { } why) Skip = why;
        else if (CudaDriver.DeviceCount(out _) is var n && n < 2) Skip = $"needs 2 CUDA GPUs, this machine has {n}";
    }
}

/// <summary>NCCL bindings (communicators, all-reduce in fp32/fp16/bf16, groups, errors) and data-parallel training on two
/// GPUs: replicas bit-identical, two GPUs at global batch 4 equal one GPU at batch 4 within tolerance.</summary>
[Collection(GpuCollection.Name)]
public sealed class NcclGpuTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "osprey-nccl-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static CudaBackend Backend(int i) => (CudaBackend)BackendRegistry.Get(Device.Cuda(i));

    [GpuFact]
    public void OneRankCommunicatorAllReducesInPlace()
    {
        var api = NcclApi.Instance;
        Assert.True(api.Version >= 21000, api.VersionText);
        var be = Backend(0);
        long live = be.Memory.LiveBytes;
        using (var comm = NcclCommunicator.InitRank(be, api.NewUniqueId(), 0, 1))
        {
            Assert.Equal(1, comm.WorldSize);
            foreach (var dtype in new[] { DType.Float32, DType.Float16, DType.BFloat16 })
            {
                using var x = GpuCheck.Make(dtype, [1000], 3, device: Gpu.Device);
                using var before = Op.To(x, Device.Cpu);
                comm.AllReduce(x);
                comm.ThrowIfAsyncError();
                using var after = Op.To(x, Device.Cpu);
                using var a = Op.Cast(before, DType.Float32);
                using var b = Op.Cast(after, DType.Float32);
                Assert.Equal(a.ToArray<float>(), b.ToArray<float>());
            }
            using var strided = Tensor.Zeros(new Shape(4, 4), DType.Float32, Gpu.Device);
            using var col = strided.Slice(1, 0, 1);
            Assert.Contains("contiguous", Assert.Throws<ArgumentException>(() => comm.AllReduce(col)).Message);
            using var onCpu = Tensor.Zeros(new Shape(4), DType.Float32);
            Assert.Contains("cuda:0", Assert.Throws<ArgumentException>(() => comm.AllReduce(onCpu)).Message);
            using var bools = Tensor.Zeros(new Shape(4), DType.Bool, Gpu.Device);
            Assert.Contains("bool", Assert.Throws<ArgumentException>(() => comm.AllReduce(bools)).Message);
        }
        be.Synchronize();
        Assert.Equal(live, be.Memory.LiveBytes);
        // a bad call reports NCCL's status and text instead of crashing
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => NcclCommunicator.InitRank(be, api.NewUniqueId(), 2, 2));
        Assert.Contains("rank 2 of a world of 2", e.Message);
        var bad = Assert.Throws<CudaException>(() => api.Check(4, call: "ncclTest()"));
        Assert.Contains("ncclInvalidArgument", bad.Message);
    }

    [MultiGpuFact]
    public void TwoGpusSumFp32Fp16Bf16ThroughInitAllAndInitRank()
    {
        var backends = new[] { Backend(0), Backend(1) };
        var comms = NcclCommunicator.InitAll(backends);
        try
        {
            foreach (var dtype in new[] { DType.Float32, DType.Float16, DType.BFloat16 })
            {
                var x = new Tensor[2];
                for (int r = 0; r < 2; r++) x[r] = GpuCheck.Make(dtype, [4099], 10 + r, lo: -4, hi: 4, device: Device.Cuda(r));
                var host = x.Select(t => { using var c = Op.Cast(Op.To(t, Device.Cpu), DType.Float32); return c.ToArray<float>(); }).ToArray();
                NcclApi.Instance.Group(() => { for (int r = 0; r < 2; r++) comms[r].AllReduce(x[r]); });
                var (atol, rtol) = GpuCheck.Tolerance(dtype);
                var results = new float[2][];
                for (int r = 0; r < 2; r++)
                {
                    using var cpu = Op.To(x[r], Device.Cpu);
                    using var f = Op.Cast(cpu, DType.Float32);
                    results[r] = f.ToArray<float>();
                    for (int i = 0; i < results[r].Length; i++)
                    {
                        double want = (double)host[0][i] + host[1][i];
                        Assert.True(Math.Abs(results[r][i] - want) <= atol * 8 + rtol * Math.Abs(want), $"{dtype.Name()} rank {r} [{i}]: {results[r][i]} vs {want}");
                    }
                    x[r].Dispose();
                }
                Assert.Equal(results[0], results[1]);   // every rank receives the same bits
            }
        }
        finally
        {
            foreach (var c in comms) c.Dispose();
        }

        // one thread per rank, ncclCommInitRank with a shared id (what the trainer does)
        var reduce = NcclGradientAllReduce.Create([Device.Cuda(0), Device.Cuda(1)]);
        try
        {
            var got = new float[2][];
            DataParallel.OnEveryRank(2, r =>
            {
                using var t = Tensor.FromArray(new float[] { r + 1, 10 * (r + 1) }, 2);
                using var g = Op.To(t, Device.Cuda(r));
                using var b = new GradientBuckets(reduce[r]);
                b.AverageInPlace([g]);
                got[r] = g.ToArray<float>();
            });
            Assert.Equal(new float[] { 1.5f, 15 }, got[0]);
            Assert.Equal(got[0], got[1]);
        }
        finally
        {
            foreach (var x in reduce) x.Dispose();
        }
    }

    [MultiGpuFact]
    public async Task AbortReleasesARankWaitingForAFailedPeer()
    {
        var reduce = NcclGradientAllReduce.Create([Device.Cuda(0), Device.Cuda(1)]);
        var task = Task.Run(() => DataParallel.OnEveryRank(2, r =>
        {
            if (r == 1) throw new InvalidDataException("rank 1 failed before the all-reduce");
            using var t = Tensor.Zeros(new Shape(1 << 20), DType.Float32, Device.Cuda(0));
            reduce[0].SumInPlace(t);
            Backend(0).Synchronize();   // would wait forever for rank 1 without the abort
        }, onFailure: () => { foreach (var x in reduce) x.Abort(); }));
        var finished = await Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(60)));
        Assert.True(finished == task, "rank 0 still waits for the failed rank");
        await Assert.ThrowsAsync<InvalidDataException>(() => task);
        foreach (var x in reduce) x.Dispose();   // after an abort: nothing left to destroy
    }

    [MultiGpuFact]
    public void TwoGpuTrainingMatchesOneGpuAndReplicasStayBitIdentical()
    {
        var set = SyntheticShapes.Generate(_dir, new SyntheticShapesOptions(Images: 8, MinSize: 64, MaxSize: 128, MaxObjects: 3, Seed: 4, MinObjectSize: 16));
        var data = new CocoDetectionDataset(set.AnnotationsPath, set.ImageDirectory, new CocoDatasetOptions(LabelMapping.CategoryId, SkipImagesWithoutBoxes: true));
        var o = DataParallelTests.Options(4, 4, Device.Cuda(0)) with { Resize = 96, MaxSize = 160 };
        using var single = DataParallelTests.NewTrainer(o, data);
        var expected = single.Run(data).Select(r => r.Loss.Total).ToList();
        using var dp = DataParallelTests.NewTrainer(o, data);
        dp.EnableDataParallel([Device.Cuda(0), Device.Cuda(1)]);
        DataParallelTests.AssertReplicasIdentical(dp, "after creation");
        var got = new List<double>();
        foreach (var r in dp.Run(data))
        {
            got.Add(r.Loss.Total);
            DataParallelTests.AssertReplicasIdentical(dp, $"after iteration {r.Iteration}");
        }
        for (int i = 0; i < expected.Count; i++)
            Assert.True(Math.Abs(got[i] - expected[i]) <= 1e-4 * Math.Abs(expected[i]), $"iteration {i + 1}: loss {got[i]} on 2 GPUs, {expected[i]} on 1");
        // cuDNN searches its algorithms per shape, so the batch-4 and batch-2 backward passes accumulate differently (some
        // filter-gradient algorithms are FFT/Winograd based): on the H200 the worst tensor differed by 5.6e-3 of
        // max(1e-3, its largest magnitude) after 4 iterations while the losses agreed to 1e-7
        var (worst, name, abs) = DataParallelTests.WorstDifference(dp, single);
        Console.WriteLine($"2 GPUs vs 1 GPU after 4 iterations: losses {string.Join(", ", got)} vs {string.Join(", ", expected)}; worst weight difference {worst:G3} ({name}, {abs:G3} absolute)");
        Assert.True(worst < 2e-2, $"weights after 4 iterations differ by {worst:G3} in {name} ({abs:G3} absolute; relative to max(1e-3, the tensor's largest magnitude))");

        // the same run as two "nodes" (one GPU each) that meet through the TCP rendezvous on localhost: node 1 starts from
        // other initial weights and receives node 0's by broadcast
        int port;
        using (var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0)) { l.Start(); port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port; }
        var master = new System.Net.DnsEndPoint("127.0.0.1", port);
        var nodeTrainers = new Trainer[2];
        var nodeLosses = new List<double>[2];
        try
        {
            DataParallel.OnEveryRank(2, node =>
            {
                var init = o with { Device = Device.Cuda(node), Seed = o.Seed };
                using var model = Osprey.Detection.Models.Architectures.Get(o.Architecture).CreateFor(TrainSetup.DefaultClasses(data));
                using var weights = ModelInit.Random(model, node == 0 ? 11 : 99);
                nodeTrainers[node] = Trainer.Create(init, TrainSetup.DefaultClasses(data), weights, "init");
                nodeTrainers[node].EnableDataParallel([Device.Cuda(node)], new MultiNodeOptions(2, node, master, TimeSpan.FromSeconds(60)));
                Assert.Equal(node == 0, nodeTrainers[node].Parallel!.IsPrimary);
                nodeLosses[node] = nodeTrainers[node].Run(data).Select(r => r.Loss.Total).ToList();
            });
            for (int p = 0; p < single.Parameters.Count; p++)
                Assert.True(nodeTrainers[0].Parameters[p].Value.ToArray<float>().AsSpan().SequenceEqual(nodeTrainers[1].Parameters[p].Value.ToArray<float>()),
                    $"node 1 differs from node 0 in {single.Parameters[p].Name}");
            // the same ranks and slices as the one-process 2-GPU run: the same tolerance against one GPU
            var (nodeWorst, nodeName, nodeAbs) = DataParallelTests.WorstDifference(nodeTrainers[0], single);
            Console.WriteLine($"2 nodes x 1 GPU vs 1 GPU: worst weight difference {nodeWorst:G3} ({nodeName}, {nodeAbs:G3} absolute)");
            Assert.True(nodeWorst < 2e-2, $"two-node weights differ from one GPU's by {nodeWorst:G3} in {nodeName}");
        }
        finally
        {
            foreach (var t in nodeTrainers) t?.Dispose();
        }
    }

    /// <summary>amp on 2 GPUs: each rank has its own loss scaler, kept equal because every rank checks the same all-reduced
    /// gradients; replicas (float16 weights, FP32 masters, momentum, scale) stay bit-identical; an inf gradient on one rank
    /// and a non-finite forward on one rank both skip the step on every rank with the same back-off (the second used to
    /// leave the other rank waiting in the all-reduce forever).</summary>
    [MultiGpuFact]
    public async Task AmpOnTwoGpusKeepsOneLossScaleAndSkipsANonFiniteStepOnEveryRank()
    {
        var set = SyntheticShapes.Generate(_dir, new SyntheticShapesOptions(Images: 8, MinSize: 64, MaxSize: 128, MaxObjects: 3, Seed: 4, MinObjectSize: 16));
        var data = new CocoDetectionDataset(set.AnnotationsPath, set.ImageDirectory, new CocoDatasetOptions(LabelMapping.CategoryId, SkipImagesWithoutBoxes: true));
        var o = DataParallelTests.Options(4, 4, Device.Cuda(0)) with { Resize = 96, MaxSize = 160, Precision = TrainPrecision.Amp };
        List<(double Loss, bool Skipped)> expected;
        using (var single = DataParallelTests.NewTrainer(o, data)) expected = single.Run(data).Select(r => (r.Loss.Total, r.Skipped)).ToList();
        using var dp = DataParallelTests.NewTrainer(o with { Iterations = 8 }, data);
        dp.EnableDataParallel([Device.Cuda(0), Device.Cuda(1)]);
        var replicas = dp.Parallel!.Replicas;
        AssertAmpReplicasIdentical(replicas, "after creation");
        var got = new List<(double Loss, bool Skipped)>();
        foreach (var r in dp.Run(data))
        {
            got.Add((r.Loss.Total, r.Skipped));
            AssertAmpReplicasIdentical(replicas, $"after iteration {r.Iteration}");
            if (r.Iteration == 4) break;
        }
        Console.WriteLine($"amp, 2 GPUs vs 1 GPU (loss, skipped): {string.Join(", ", got)} vs {string.Join(", ", expected)}; scale {replicas[0].Precision.Scaler!.Scale}");
        // the same weights at iteration 1: only float16 rounding (cuDNN picks algorithms per batch size) separates the losses
        Assert.True(Math.Abs(got[0].Loss - expected[0].Loss) <= 1e-2 * Math.Abs(expected[0].Loss), $"iteration 1: amp loss {got[0].Loss} on 2 GPUs, {expected[0].Loss} on 1");
        Assert.All(got, g => Assert.True(double.IsFinite(g.Loss), $"amp loss {g.Loss}"));

        // an inf gradient on rank 1 alone: the reduced gradients are inf on both ranks, both skip and halve the scale
        var samples = Enumerable.Range(0, 4).Select(data.Load).ToArray();
        float scale = replicas[0].Precision.Scaler!.Scale;
        long skipped = replicas[0].Precision.Scaler!.Skipped;
        var before = Weights(replicas[0]);
        var hook = replicas[1].GradientHook!;
        replicas[1].GradientHook = g =>
        {
            g[0].Backend.Fill(g[0], double.PositiveInfinity);
            hook(g);
        };
        TrainStepResult step;
        try { step = dp.Parallel.Step(samples); }
        finally { replicas[1].GradientHook = hook; }
        Assert.True(step.Skipped, "an inf gradient on rank 1 did not skip rank 0's step");
        foreach (var t in replicas)
        {
            Assert.Equal(scale / 2, t.Precision.Scaler!.Scale);
            Assert.Equal(skipped + 1, t.Precision.Scaler!.Skipped);
        }
        Assert.Equal(before, Weights(replicas[0]));
        AssertAmpReplicasIdentical(replicas, "after an inf gradient on rank 1");

        // a non-finite forward on rank 1 alone: its float16 class-logit bias set to +inf (its FP32 master is untouched), so
        // its logits and loss are inf; it must join the all-reduce with NaN gradients, and both ranks skip. (An inf input
        // image is no way to get there: on the H200 the ReLUs turned the NaNs it made into zeros and the loss came out finite.)
        int bias = replicas[1].Parameters.ToList().FindIndex(q => q.Name == "head.classification_head.cls_logits.bias");
        Assert.True(bias >= 0, "no head.classification_head.cls_logits.bias parameter");
        var poisoned = replicas[1].Parameters[bias].Value;
        poisoned.Backend.Fill(poisoned, double.PositiveInfinity);
        var run = Task.Run(() => dp.Parallel.Step(samples));
        if (await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(120))) != run)
        {
            // release the rank stuck in the all-reduce so that later GPU tests can run, then fail
            typeof(DataParallel).GetMethod("AbortAll", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.Invoke(dp.Parallel, null);
            Assert.Fail("rank 0 still waits in the all-reduce for rank 1, whose forward was not finite");
        }
        step = await run;
        using (var good = Op.To(replicas[0].Parameters[bias].Value, Device.Cuda(1))) Op.CopyInto(good, poisoned);
        // the logged loss is the mean of the ranks' losses: rank 1's is inf
        Assert.False(double.IsFinite(step.Loss.Total), $"the mean loss {step.Loss.Total} with rank 1's logits at +inf");
        Assert.True(step.Skipped, "rank 0 did not skip the step rank 1 could not compute");
        foreach (var t in replicas) Assert.Equal(scale / 4, t.Precision.Scaler!.Scale);
        Assert.Equal(before, Weights(replicas[0]));
        AssertAmpReplicasIdentical(replicas, "after a non-finite forward on rank 1");

        // training goes on, in step on both ranks
        var after = dp.Run(data).ToList();
        Assert.Equal(8, dp.Iteration);
        Assert.Contains(after, r => !r.Skipped);
        AssertAmpReplicasIdentical(replicas, "after iteration 8");
        Assert.NotEqual(before, Weights(replicas[0]));
    }

    /// <summary>Every rank's checkpoint form (16-bit weights through their FP32 masters, momentum, iteration, loss scale and growth
    /// tracker) and 16-bit model weights equal rank 0's bit for bit.</summary>
    private static void AssertAmpReplicasIdentical(IReadOnlyList<Trainer> replicas, string when)
    {
        using var first = replicas[0].ExportWeights(withOptimizer: true);
        for (int r = 1; r < replicas.Count; r++)
        {
            using var other = replicas[r].ExportWeights(withOptimizer: true);
            Assert.Equal(first.Keys.Order(), other.Keys.Order());
            foreach (var (key, t) in first.Entries)
                Assert.True(Floats(t).AsSpan().SequenceEqual(Floats(other[key])), $"{when}: rank {r} differs from rank 0 in {key}");
            foreach (var (key, v) in first.Metadata) Assert.True(other.Metadata.GetValueOrDefault(key) == v, $"{when}: rank {r} has {key} = {other.Metadata.GetValueOrDefault(key)}, rank 0 {v}");
            for (int p = 0; p < replicas[0].Parameters.Count; p++)
                Assert.True(Floats(replicas[0].Parameters[p].Value).AsSpan().SequenceEqual(Floats(replicas[r].Parameters[p].Value)),
                    $"{when}: rank {r} differs from rank 0 in the {replicas[0].Parameters[p].Value.DType.Name()} model tensor {replicas[0].Parameters[p].Name}");
        }
    }

    private static float[] Floats(Tensor t)
    {
        using var cpu = Op.To(t, Device.Cpu);
        using var f = Op.Cast(cpu, DType.Float32);
        return f.ToArray<float>();
    }

    /// <summary>Rank 0's exported float32 weights, concatenated in key order.</summary>
    private static float[] Weights(Trainer t)
    {
        using var w = t.ExportWeights();
        return w.Keys.Order().SelectMany(k => Floats(w[k])).ToArray();
    }
}
