using System.Net;
using System.Runtime.ExceptionServices;
using Osprey.Core.Tensors;
using Osprey.Cuda.Nccl;
using Osprey.Detection.Training.Data;
using Osprey.Vision.Transforms;

namespace Osprey.Detection.Training.Loop;

/// <summary>
/// Data-parallel training in one process: one replica of the model per device (rank 0 is the <see cref="Trainer"/> the
/// caller holds; the others are copies of its weights and optimiser state, so every replica starts bit-identical), one
/// thread per rank per step. Each iteration's global batch (<see cref="TrainOptions.BatchSize"/> images, as ODTK's --batch)
/// is split into equal contiguous slices, one per rank; all slices are padded to the global batch's padded size, so each
/// rank sees exactly the input a single device would (the anchors too). Each rank runs forward and backward on its slice;
/// its gradients are averaged over the ranks (<see cref="GradientBuckets"/>: one flat buffer per dtype, one all-reduce
/// each) before clipping, and every replica takes the same optimiser step. Because the loss is a mean over images, the
/// mean of the slices' gradients is the global batch's gradient, so N devices at global batch B follow one device at batch B
/// up to floating-point summation order. Checkpoints, validation and the log use rank 0 only.
/// </summary>
public sealed class DataParallel : IDisposable
{
    private readonly Trainer _primary;
    private readonly Trainer[] _replicas;   // [0] = the primary (not owned)
    private readonly IGradientAllReduce[] _reduce;
    private readonly GradientBuckets[] _buckets;
    private readonly int _firstRank;
    private readonly int _world;
    private string? _broken;

    private DataParallel(Trainer primary, Trainer[] replicas, IGradientAllReduce[] reduce, int firstRank, int world)
    {
        _primary = primary;
        _firstRank = firstRank;
        _world = world;
        _replicas = replicas;
        _reduce = reduce;
        _buckets = reduce.Select(r => new GradientBuckets(r)).ToArray();
        for (int r = 0; r < replicas.Length; r++)
        {
            var buckets = _buckets[r];
            replicas[r].GradientHook = buckets.AverageInPlace;
        }
    }

    /// <summary>The ranks' devices, rank 0 first.</summary>
    public IReadOnlyList<Device> Devices => _replicas.Select(t => t.Options.Device).ToArray();

    /// <summary>Every rank's trainer (rank 0 = the primary), for checks that the replicas agree.</summary>
    public IReadOnlyList<Trainer> Replicas => _replicas;

    /// <summary>Ranks in the whole run (all nodes).</summary>
    public int WorldSize => _world;

    /// <summary>Whether this process holds global rank 0 (it writes checkpoints, validates and logs).</summary>
    public bool IsPrimary => _firstRank == 0;

    /// <summary>
    /// Builds the replicas of <paramref name="primary"/> on <paramref name="devices"/> (devices[0] must be the primary's) and
    /// the collective: NCCL when every device is a GPU, else <see cref="HostAllReduceGroup"/>.
    /// </summary>
    internal static DataParallel Create(Trainer primary, IReadOnlyList<Device> devices, MultiNodeOptions? nodes = null)
    {
        ArgumentNullException.ThrowIfNull(primary);
        ArgumentNullException.ThrowIfNull(devices);
        Validate(primary.Options, devices, nodes);
        int world = devices.Count * (nodes?.Nodes ?? 1), firstRank = devices.Count * (nodes?.NodeRank ?? 0);
        var replicas = new Trainer[devices.Count];
        replicas[0] = primary;
        IGradientAllReduce[]? reduce = null;
        try
        {
            for (int r = 1; r < devices.Count; r++) replicas[r] = primary.Replica(devices[r]);
            if (nodes is not null)
            {
                reduce = NcclGradientAllReduce.Create(devices, Rendezvous(nodes, devices.Count, primary.Iteration), firstRank, world);
                BroadcastWeights(replicas, reduce);
            }
            else if (devices.All(d => d.Type == DeviceType.Cuda)) reduce = NcclGradientAllReduce.Create(devices);
            else reduce = new HostAllReduceGroup(devices.Count).Ranks();
            return new DataParallel(primary, replicas, reduce, firstRank, world);
        }
        catch
        {
            if (reduce is not null) foreach (var x in reduce) x?.Dispose();
            for (int r = 1; r < replicas.Length; r++) replicas[r]?.Dispose();
            throw;
        }
    }

    /// <summary>Node 0 creates the NCCL id and serves it; the other nodes fetch it (<see cref="TcpRendezvous"/>).</summary>
    private static NcclUniqueId Rendezvous(MultiNodeOptions nodes, int gpus, long iteration)
    {
        if (nodes.NodeRank != 0)
            return NcclUniqueId.FromBytes(TcpRendezvous.Join(nodes.Master, nodes.Nodes, nodes.NodeRank, gpus, iteration, nodes.Timeout));
        var id = NcclApi.Instance.NewUniqueId();
        TcpRendezvous.Serve(new IPEndPoint(IPAddress.Any, nodes.Master.Port), nodes.Nodes, gpus, iteration, id.ToBytes(), nodes.Timeout);
        return id;
    }

    /// <summary>Multi-node start: every rank takes global rank 0's parameters (nodes may have built them separately).</summary>
    private static void BroadcastWeights(Trainer[] replicas, IGradientAllReduce[] reduce)
    {
        OnEveryRank(replicas.Length, rank =>
        {
            var comm = ((NcclGradientAllReduce)reduce[rank]).Communicator;
            foreach (var p in replicas[rank].Parameters) comm.Broadcast(p.Value, root: 0);
            comm.Backend.Synchronize();
            comm.ThrowIfAsyncError();
        }, onFailure: () => { foreach (var r in reduce) r.Abort(); });
    }

    /// <summary>Throws <see cref="ArgumentException"/> for a device list data-parallel training cannot use.</summary>
    public static void Validate(TrainOptions options, IReadOnlyList<Device> devices, MultiNodeOptions? nodes = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(devices);
        nodes?.Validate();
        int world = devices.Count * (nodes?.Nodes ?? 1);
        if (nodes is not null && devices.Any(d => d.Type != DeviceType.Cuda))
            throw new ArgumentException($"--nodes {nodes.Nodes}: multi-node training runs on GPUs (NCCL); got {string.Join(',', devices)}");
        if (world < 2) throw new ArgumentException($"--devices: data-parallel training needs at least 2 devices, got {devices.Count}");
        if (devices[0] != options.Device) throw new ArgumentException($"--devices: rank 0 runs on {devices[0]}, but the trainer is on {options.Device}");
        if (devices.Distinct().Count() != devices.Count && devices.Any(d => d.Type != DeviceType.Cpu))
            throw new ArgumentException($"--devices {string.Join(',', devices)}: a GPU is listed twice");
        if (devices.Any(d => d.Type != devices[0].Type))
            throw new ArgumentException($"--devices {string.Join(',', devices)}: mixes device types");
        if (options.BatchSize % world != 0)
            throw new ArgumentException($"--batch {options.BatchSize} is the global batch: it must be a multiple of the {world} devices{(nodes is null ? "" : $" of all {nodes.Nodes} nodes")}");
    }

    /// <summary>One iteration on the global batch <paramref name="samples"/> (global rank r takes samples [r*b, (r+1)*b), b = B / world).
    /// Returns local rank 0's figures with the loss averaged over this process's ranks (on one node: the global batch's loss)
    /// and the global image count.</summary>
    public TrainStepResult Step(IReadOnlyList<DetectionSample> samples)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (_broken is not null) throw new InvalidOperationException($"data-parallel training stopped after a failure: {_broken}");
        int n = _replicas.Length;
        if (samples.Count == 0 || samples.Count % _world != 0)
            throw new ArgumentException($"data parallel: a batch of {samples.Count} images cannot be split evenly over {_world} devices");
        int per = samples.Count / _world;
        long iteration = _primary.Iteration;
        var pre = _primary.Preprocessor(iteration);
        var (height, width) = PaddedSize(samples, pre.Resize);
        var results = new TrainStepResult[n];
        try
        {
            OnEveryRank(n, rank =>
            {
                var replica = _replicas[rank];
                if (replica.Iteration != iteration)
                    throw new InvalidOperationException($"data parallel: rank {rank} is at iteration {replica.Iteration}, rank 0 at {iteration}");
                var slice = new DetectionSample[per];
                for (int i = 0; i < per; i++) slice[i] = samples[(_firstRank + rank) * per + i];
                using var batch = Collate(slice, replica.Preprocessor(iteration), height, width);
                results[rank] = replica.Step(batch);
            }, onFailure: AbortAll);
        }
        catch (Exception e)
        {
            _broken = e.Message;
            throw;
        }
        double cls = 0, box = 0;
        foreach (var r in results)
        {
            cls += r.Loss.Classification;
            box += r.Loss.BoxRegression;
        }
        var first = results[0];
        return first with { Loss = new DetectionLoss(cls / n, box / n), Images = samples.Count };
    }

    private void AbortAll()
    {
        foreach (var r in _reduce) r.Abort();
    }

    /// <summary>The padded input size of the whole batch (what a single device would collate it to).</summary>
    internal static (int Height, int Width) PaddedSize(IReadOnlyList<DetectionSample> samples, ResizePolicy resize)
    {
        int maxH = 0, maxW = 0;
        foreach (var s in samples)
        {
            var (h, w) = resize.Resized(s.Image.Height, s.Image.Width);
            maxH = Math.Max(maxH, h);
            maxW = Math.Max(maxW, w);
        }
        return (resize.Padded(maxH), resize.Padded(maxW));
    }

    /// <summary><see cref="TrainingBatch.Collate"/>, then zero padding up to the global batch's size when the slice's own is smaller.</summary>
    internal static TrainingBatch Collate(IReadOnlyList<DetectionSample> slice, Preprocessor pre, int height, int width)
    {
        var batch = TrainingBatch.Collate(slice, pre);
        var x = batch.Images.Images;
        if (x.Shape[2] == height && x.Shape[3] == width) return batch;
        try
        {
            if (x.Shape[2] > height || x.Shape[3] > width)
                throw new InvalidOperationException($"data parallel: a slice collated to {x.Shape[2]}x{x.Shape[3]}, larger than the batch's {height}x{width}");
            Tensor padded;
            using (TensorScope.Untracked()) padded = Tensor.Zeros(new Shape(x.Shape[0], x.Shape[1], height, width), x.DType, x.Device);
            using (var h = padded.Slice(2, 0, x.Shape[2]))
            using (var dst = h.Slice(3, 0, x.Shape[3]))
                Core.Ops.Op.CopyInto(x, dst);
            var images = new ImageBatch(padded, batch.Images.Resized, batch.Images.Original);
            return new TrainingBatch(images, batch.Targets.ToArray());
        }
        finally
        {
            batch.Dispose();
        }
    }

    /// <summary>Runs <paramref name="body"/>(rank) for every rank at once, rank 0 on the calling thread and the others on
    /// their own threads (collectives need all ranks running together). On the first failure <paramref name="onFailure"/>
    /// runs (abort the collectives so that no rank waits forever); after all ranks return, the exception of the rank that
    /// failed first (the root cause, not the others' "aborted" errors) is rethrown.</summary>
    public static void OnEveryRank(int ranks, Action<int> body, Action? onFailure = null)
    {
        ArgumentNullException.ThrowIfNull(body);
        var errors = new Exception?[ranks];
        int first = -1;
        void Run(int rank)
        {
            try { body(rank); }
            catch (Exception e)
            {
                errors[rank] = e;
                // the first rank to fail is the root cause; the others fail because the collective was aborted under them
                if (Interlocked.CompareExchange(ref first, rank, -1) == -1) onFailure?.Invoke();
            }
        }
        var threads = new Thread[ranks];
        for (int r = 1; r < ranks; r++)
        {
            int rank = r;
            threads[r] = new Thread(() => Run(rank)) { IsBackground = true, Name = $"osprey-rank-{rank}" };
            threads[r].Start();
        }
        Run(0);
        for (int r = 1; r < ranks; r++) threads[r].Join();
        if (first >= 0)
        {
            var cause = errors[first]!;
            if (cause is OperationCanceledException or ObjectDisposedException)
                throw new InvalidOperationException($"data parallel: rank {first} stopped: {cause.Message}", cause);
            ExceptionDispatchInfo.Throw(cause);
        }
    }

    public void Dispose()
    {
        foreach (var b in _buckets) b.Dispose();
        for (int r = 0; r < _replicas.Length; r++) _replicas[r].GradientHook = null;
        for (int r = 1; r < _replicas.Length; r++) _replicas[r].Dispose();
        foreach (var x in _reduce) x.Dispose();
    }
}

/// <summary>A run over several nodes (processes): <see cref="Nodes"/> in all, this one <see cref="NodeRank"/>; node 0 serves the
/// NCCL id at <see cref="Master"/> (host:port; it listens on that port on every interface).</summary>
public sealed record MultiNodeOptions(int Nodes, int NodeRank, DnsEndPoint Master, TimeSpan Timeout)
{
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Master);
        if (Nodes < 2) throw new ArgumentException($"--nodes {Nodes}: a multi-node run needs at least 2 nodes");
        if (NodeRank < 0 || NodeRank >= Nodes) throw new ArgumentException($"--node-rank {NodeRank}: expected 0..{Nodes - 1}");
        if (Timeout <= TimeSpan.Zero) throw new ArgumentException($"rendezvous timeout {Timeout} must be positive");
    }
}
