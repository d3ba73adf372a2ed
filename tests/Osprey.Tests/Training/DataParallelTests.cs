using System.Net;
using System.Net.Sockets;
using Osprey.Cli.Commands;
using Osprey.Core.Tensors;
using Osprey.Cuda.Nccl;
using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Loop;
using Osprey.Tests.Support;
using Xunit;

namespace Osprey.Tests.Training;

/// <summary>Data-parallel training with CPU replicas and the in-process all-reduce (the same loop the GPUs run with NCCL):
/// replicas stay bit-identical, two ranks at global batch 2 follow one trainer at batch 2, failures do not hang, the TCP
/// rendezvous of multi-node runs, and `osprey train --devices`.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class DataParallelTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "osprey-ddp-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>Images of different sizes, so slices pad to the global batch's size.</summary>
    private CocoDetectionDataset Data()
    {
        var set = SyntheticShapes.Generate(_dir, new SyntheticShapesOptions(Images: 8, MinSize: 48, MaxSize: 96, MaxObjects: 2, Seed: 4, MinObjectSize: 16));
        return new CocoDetectionDataset(set.AnnotationsPath, set.ImageDirectory, new CocoDatasetOptions(LabelMapping.CategoryId, SkipImagesWithoutBoxes: true));
    }

    internal static TrainOptions Options(int iters, int batch, Device device) => new()
    {
        Architecture = "retinanet_resnet18_fpn", BatchSize = batch, Iterations = iters, LearningRate = 0.01, Warmup = 1, Milestones = [1000],
        Resize = 48, MaxSize = 96, FlipProbability = 0, Seed = 7, Workers = 1, Device = device,
    };

    internal static Trainer NewTrainer(TrainOptions o, CocoDetectionDataset data)
    {
        int classes = TrainSetup.DefaultClasses(data);
        using var model = Osprey.Detection.Models.Architectures.Get(o.Architecture).CreateFor(classes);
        using var init = ModelInit.Random(model, 11);
        return Trainer.Create(o, classes, init, "init");
    }

    internal static void AssertReplicasIdentical(Trainer t, string when)
    {
        var replicas = t.Parallel!.Replicas;
        for (int p = 0; p < t.Parameters.Count; p++)
        {
            var a = replicas[0].Parameters[p].Value.ToArray<float>();
            for (int r = 1; r < replicas.Count; r++)
                Assert.True(a.AsSpan().SequenceEqual(replicas[r].Parameters[p].Value.ToArray<float>()), $"{when}: rank {r} differs from rank 0 in {t.Parameters[p].Name}");
        }
    }

    /// <summary>Max |a - b| / max(1e-3, max |b|) over each parameter tensor.</summary>
    internal static double WorstRelativeDifference(Trainer a, Trainer b) => WorstDifference(a, b).Relative;

    /// <summary>The worst tensor by max |a - b| / max(1e-3, max |b|): that ratio, its name and its absolute difference.</summary>
    internal static (double Relative, string Name, double Absolute) WorstDifference(Trainer a, Trainer b)
    {
        (double, string, double) worst = (0, "", 0);
        for (int p = 0; p < a.Parameters.Count; p++)
        {
            var x = a.Parameters[p].Value.ToArray<float>();
            var y = b.Parameters[p].Value.ToArray<float>();
            double scale = 1e-3, diff = 0;
            for (int i = 0; i < x.Length; i++)
            {
                scale = Math.Max(scale, Math.Abs(y[i]));
                diff = Math.Max(diff, Math.Abs(x[i] - y[i]));
            }
            if (diff / scale > worst.Item1) worst = (diff / scale, a.Parameters[p].Name, diff);
        }
        return worst;
    }

    [Fact]
    public void TwoRanksFollowOneTrainerAndStayBitIdentical()
    {
        var data = Data();
        using var single = NewTrainer(Options(3, 4, Device.Cpu), data);
        var expected = single.Run(data).Select(r => r.Loss).ToList();

        using var dp = NewTrainer(Options(3, 4, Device.Cpu), data);
        dp.EnableDataParallel([Device.Cpu, Device.Cpu]);
        AssertReplicasIdentical(dp, "after creation");
        var got = new List<Osprey.Detection.Training.DetectionLoss>();
        foreach (var r in dp.Run(data))
        {
            Assert.Equal(4, r.Images);
            got.Add(r.Loss);
            AssertReplicasIdentical(dp, $"after iteration {r.Iteration}");
        }
        Assert.Equal(3, got.Count);
        for (int i = 0; i < 3; i++)
        {
            Assert.True(Math.Abs(got[i].Classification - expected[i].Classification) <= 1e-5 * Math.Abs(expected[i].Classification) + 1e-7, $"iteration {i + 1}: cls {got[i].Classification} vs {expected[i].Classification}");
            Assert.True(Math.Abs(got[i].BoxRegression - expected[i].BoxRegression) <= 1e-5 * Math.Abs(expected[i].BoxRegression) + 1e-7, $"iteration {i + 1}: box {got[i].BoxRegression} vs {expected[i].BoxRegression}");
        }
        double worst = WorstRelativeDifference(dp, single);
        Assert.True(worst < 1e-5, $"weights after 3 iterations differ by {worst:G3} (relative to each tensor's largest magnitude)");
    }

    [Fact]
    public void BucketsAverageEveryDtypeOverThreeRanks()
    {
        const int Ranks = 3;
        using var group = new HostAllReduceGroup(Ranks);
        var reduce = group.Ranks();
        var grads = new Tensor[Ranks][];
        for (int r = 0; r < Ranks; r++)
            grads[r] =
            [
                Tensor.FromArray(new float[] { r, 2 * r, 3, -r, 0.5f * r, 1 }, 2, 3),
                Tensor.FromArray(new float[] { 10 * r }, 1),
                Op16([r, r + 1, 4]),
            ];
        DataParallel.OnEveryRank(Ranks, r =>
        {
            using var b = new GradientBuckets(reduce[r]);
            b.AverageInPlace(grads[r]);
            b.AverageInPlace(grads[r]);   // the persistent buffers are reused: the mean of equal values is unchanged
        });
        for (int r = 0; r < Ranks; r++)
        {
            Assert.Equal(new float[] { 1, 2, 3, -1, 0.5f, 1 }, grads[r][0].ToArray<float>());
            Assert.Equal(new float[] { 10 }, grads[r][1].ToArray<float>());
            using var f = Osprey.Core.Ops.Op.Cast(grads[r][2], DType.Float32);
            Assert.Equal(new float[] { 1, 2, 4 }, f.ToArray<float>());
            foreach (var g in grads[r]) g.Dispose();
        }

        static Tensor Op16(float[] v)
        {
            using var t = Tensor.FromArray(v, v.Length);
            return Osprey.Core.Ops.Op.Cast(t, DType.Float16);
        }
    }

    [Fact]
    public async Task AFailingRankStopsTheOthersInsteadOfHanging()
    {
        using var group = new HostAllReduceGroup(2);
        var reduce = group.Ranks();
        var task = Task.Run(() => DataParallel.OnEveryRank(2, r =>
        {
            if (r == 1) throw new InvalidDataException("rank 1 could not read its batch");
            using var t = Tensor.FromArray(new float[] { 1 }, 1);
            reduce[r].SumInPlace(t);   // waits for rank 1, which never comes
        }, onFailure: () => { foreach (var x in reduce) x.Abort(); }));
        var finished = await Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(30)));
        Assert.True(finished == task, "rank 0 still waits for the failed rank");
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => task);
        Assert.Contains("rank 1", e.Message);
    }

    [Fact]
    public void BadDeviceListsAreRefused()
    {
        var o = Options(1, 3, Device.Cpu);
        Assert.Contains("multiple of the 2 devices", Assert.Throws<ArgumentException>(() => DataParallel.Validate(o, [Device.Cpu, Device.Cpu])).Message);
        Assert.Contains("at least 2", Assert.Throws<ArgumentException>(() => DataParallel.Validate(o, [Device.Cpu])).Message);
        Assert.Contains("rank 0 runs on cuda:0", Assert.Throws<ArgumentException>(() => DataParallel.Validate(o with { BatchSize = 2 }, [Device.Cuda(0), Device.Cuda(1)])).Message);
        Assert.Equal([Device.Cpu, Device.Cpu], TrainDevices.Parse("cpu,cpu"));
        Assert.Contains("at least 2", Assert.Throws<ArgumentException>(() => TrainDevices.Parse("cpu")).Message);
        Assert.Contains("'x1'", Assert.Throws<ArgumentException>(() => TrainDevices.Parse("0,x1")).Message);
        Assert.Contains("all GPUs", Assert.Throws<ArgumentException>(() => TrainDevices.Parse("cpu,0")).Message);
        Assert.Contains("--devices", Assert.Throws<ArgumentException>(() => TrainDevices.Parse("all")).Message);
    }

    [Fact]
    public void MultiNodeSettingsAreChecked()
    {
        var s = new TrainSettings("m.safetensors", "retinanet_resnet18_fpn", "a.json", "img", null, null, 1000, 500, null, null, 2, 10,
            0.01, 100, [60, 80], null, 800, 1333, "fp32", "cpu", null, 0, 500, null);
        Assert.Null(s.MultiNode());
        Assert.Contains("--master", Assert.Throws<ArgumentException>(() => (s with { Nodes = 2 }).MultiNode()).Message);
        Assert.Contains("--node-rank 2", Assert.Throws<ArgumentException>(() => (s with { Nodes = 2, NodeRank = 2, Master = "h:1" }).MultiNode()).Message);
        Assert.Contains("--nodes 1", Assert.Throws<ArgumentException>(() => (s with { Master = "h:1" }).MultiNode()).Message);
        var m = (s with { Nodes = 2, NodeRank = 1, Master = "node0:29500", Devices = "cpu" }).MultiNode()!;
        Assert.Equal(("node0", 29500, 1), (m.Master.Host, m.Master.Port, m.NodeRank));
        var o = Options(1, 2, Device.Cpu);
        Assert.Contains("runs on GPUs", Assert.Throws<ArgumentException>(() => DataParallel.Validate(o, [Device.Cpu], m)).Message);
        Assert.Contains("of all 2 nodes", Assert.Throws<ArgumentException>(() =>
            DataParallel.Validate(o with { Device = Device.Cuda(0), BatchSize = 3 }, [Device.Cuda(0)], m)).Message);
        DataParallel.Validate(o with { Device = Device.Cuda(0) }, [Device.Cuda(0)], m);   // one GPU per node is a world of 2
    }

    [Fact]
    public void TrainCommandRunsDataParallelWithCpuReplicas()
    {
        var set = SyntheticShapes.Generate(_dir, new SyntheticShapesOptions(Images: 4, MinSize: 64, MaxSize: 64, MaxObjects: 2, Seed: 3, MinObjectSize: 20));
        string ck = Path.Combine(_dir, "out", "model.safetensors");
        Assert.Equal(0, Osprey.Cli.Program.Main(["train", ck, "--arch", "retinanet_resnet18_fpn", "--annotations", set.AnnotationsPath, "--images", set.ImageDirectory,
            "--batch", "2", "--iters", "2", "--warmup", "1", "--milestones", "100", "--resize", "48", "--max-size", "64", "--devices", "cpu,cpu"]));
        Assert.True(File.Exists(ck));
        Assert.Equal(3, File.ReadAllLines(Path.Combine(_dir, "out", "train.csv")).Length);
        // the global batch must split evenly
        Assert.Equal(2, Osprey.Cli.Program.Main(["train", Path.Combine(_dir, "o2", "m.safetensors"), "--arch", "retinanet_resnet18_fpn", "--annotations", set.AnnotationsPath,
            "--images", set.ImageDirectory, "--batch", "3", "--iters", "1", "--resize", "48", "--max-size", "64", "--devices", "cpu,cpu"]));
    }

    [Fact]
    public async Task RendezvousHandsNodeZerosIdToEveryNode()
    {
        int port = FreePort();
        var id = Enumerable.Range(0, NcclUniqueId.Size).Select(i => (byte)(i * 7 + 3)).ToArray();
        var master = new DnsEndPoint("127.0.0.1", port);
        // the joiners start first and retry until node 0 listens
        var joins = Enumerable.Range(1, 2).Select(n => Task.Run(() => TcpRendezvous.Join(master, 3, n, 2, 40, TimeSpan.FromSeconds(20)))).ToArray();
        Thread.Sleep(300);
        TcpRendezvous.Serve(new IPEndPoint(IPAddress.Loopback, port), 3, 2, 40, id, TimeSpan.FromSeconds(20));
        foreach (var j in joins) Assert.Equal(id, await j);
        Assert.Equal(id, NcclUniqueId.FromBytes(id).ToBytes());
    }

    [Fact]
    public async Task RendezvousRefusesDisagreeingNodesAndTimesOut()
    {
        int port = FreePort();
        var master = new DnsEndPoint("localhost", port);
        var bad = Task.Run(() => TcpRendezvous.Join(master, 2, 1, 4, 0, TimeSpan.FromSeconds(20)));
        var e = Assert.Throws<RendezvousException>(() => TcpRendezvous.Serve(new IPEndPoint(IPAddress.Loopback, port), 2, 2, 0, new byte[128], TimeSpan.FromSeconds(20)));
        Assert.Contains("node 1 has 4 GPU(s)", e.Message);
        var je = await Assert.ThrowsAsync<RendezvousException>(() => bad);
        Assert.Contains("refused by node 0: node 1 has 4 GPU(s)", je.Message);

        int port2 = FreePort();
        var stale = Task.Run(() => TcpRendezvous.Join(new DnsEndPoint("127.0.0.1", port2), 2, 1, 1, 0, TimeSpan.FromSeconds(20)));
        Assert.Contains("node 1 starts at iteration 0, node 0 at 500", Assert.Throws<RendezvousException>(() =>
            TcpRendezvous.Serve(new IPEndPoint(IPAddress.Loopback, port2), 2, 1, 500, new byte[128], TimeSpan.FromSeconds(20))).Message);
        await Assert.ThrowsAsync<RendezvousException>(() => stale);

        var missing = Assert.Throws<RendezvousException>(() => TcpRendezvous.Serve(new IPEndPoint(IPAddress.Loopback, FreePort()), 3, 1, 0, new byte[128], TimeSpan.FromSeconds(1)));
        Assert.Contains("node(s) 1, 2 of 3 never connected", missing.Message);
        var nobody = Assert.Throws<RendezvousException>(() => TcpRendezvous.Join(new DnsEndPoint("127.0.0.1", FreePort()), 2, 1, 1, 0, TimeSpan.FromSeconds(1)));
        Assert.Contains("could not reach node 0", nobody.Message);
        Assert.Contains("host:port", Assert.Throws<ArgumentException>(() => TcpRendezvous.ParseMaster("node0")).Message);
        Assert.Equal(29500, TcpRendezvous.ParseMaster("node0:29500").Port);
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
