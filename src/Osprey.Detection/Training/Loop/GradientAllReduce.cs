using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Cuda.Nccl;

namespace Osprey.Detection.Training.Loop;

/// <summary>One rank's side of the collective that sums a flat gradient buffer over every replica. All ranks call
/// <see cref="SumInPlace"/> with buffers of the same dtype and element count, in the same order.</summary>
public interface IGradientAllReduce : IDisposable
{
    int Rank { get; }
    int WorldSize { get; }

    /// <summary>Replaces <paramref name="flat"/> (contiguous, on this rank's device) by the element-wise sum over all ranks.</summary>
    void SumInPlace(Tensor flat);

    /// <summary>Tears the collective down without waiting, so that ranks blocked in it return (after a failure elsewhere).</summary>
    void Abort();
}

/// <summary>NCCL all-reduce (sum) on the rank's CUDA stream; owns its communicator.</summary>
public sealed class NcclGradientAllReduce(NcclCommunicator communicator) : IGradientAllReduce
{
    public int Rank => communicator.Rank;
    public int WorldSize => communicator.WorldSize;
    public NcclCommunicator Communicator => communicator;

    public void SumInPlace(Tensor flat)
    {
        communicator.AllReduce(flat, NcclReduceOp.Sum);
        communicator.ThrowIfAsyncError();
    }

    public void Abort() => communicator.Abort();
    public void Dispose() => communicator.Dispose();

    /// <summary>One communicator per CUDA device, rank i on <paramref name="devices"/>[i]: ncclCommInitRank on each rank's own
    /// thread (see <see cref="DataParallel.OnEveryRank"/>) with one fresh unique id.</summary>
    public static IGradientAllReduce[] Create(IReadOnlyList<Device> devices) => Create(devices, NcclApi.Instance.NewUniqueId(), 0, devices.Count);

    /// <summary>This process's ranks of a larger world (multi-node): local rank i is global rank <paramref name="firstRank"/> + i
    /// of <paramref name="worldSize"/>; <paramref name="id"/> is global rank 0's unique id (see <see cref="TcpRendezvous"/>).</summary>
    public static IGradientAllReduce[] Create(IReadOnlyList<Device> devices, NcclUniqueId id, int firstRank, int worldSize)
    {
        ArgumentNullException.ThrowIfNull(devices);
        var result = new IGradientAllReduce[devices.Count];
        DataParallel.OnEveryRank(devices.Count, rank =>
        {
            var backend = (CudaBackend)BackendRegistry.Get(devices[rank]);
            result[rank] = new NcclGradientAllReduce(NcclCommunicator.InitRank(backend, id, firstRank + rank, worldSize));
        }, onFailure: () => { foreach (var r in result) r?.Abort(); });
        return result;
    }
}

/// <summary>
/// An in-process all-reduce for replicas whose ranks are threads of this process on any device (the CPU backend,
/// tests, a machine without NCCL): every rank posts its buffer, rank 0 sums them on the host in rank order (so the result
/// does not depend on thread timing) and every rank copies the sum back. Two barrier phases per call.
/// </summary>
public sealed class HostAllReduceGroup : IDisposable
{
    private readonly Barrier _barrier;
    private readonly Tensor?[] _posted;
    private readonly CancellationTokenSource _abort = new();
    private Tensor? _sum;

    public HostAllReduceGroup(int worldSize)
    {
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize), $"all-reduce: world size {worldSize} must be at least 1");
        WorldSize = worldSize;
        _barrier = new Barrier(worldSize);
        _posted = new Tensor?[worldSize];
    }

    public int WorldSize { get; }

    /// <summary>The rank objects, one per thread.</summary>
    public IGradientAllReduce[] Ranks() => Enumerable.Range(0, WorldSize).Select(r => (IGradientAllReduce)new RankHandle(this, r)).ToArray();

    private void Sum(int rank, Tensor flat)
    {
        var token = _abort.Token;
        _posted[rank] = flat;
        _barrier.SignalAndWait(token);
        if (rank == 0)
        {
            try
            {
                using var scope = new TensorScope();
                var acc = Op.Cast(Op.To(_posted[0]!, Device.Cpu), DType.Float32);
                for (int r = 1; r < WorldSize; r++)
                {
                    var other = _posted[r]!;
                    if (other.Shape != flat.Shape || other.DType != flat.DType)
                        throw new InvalidOperationException($"all-reduce: rank {r} posted {other.Shape} {other.DType.Name()}, rank 0 {flat.Shape} {flat.DType.Name()}");
                    acc = Op.Add(acc, Op.Cast(Op.To(other, Device.Cpu), DType.Float32));
                }
                _sum = scope.Keep(Op.Cast(acc, flat.DType));
            }
            catch
            {
                _abort.Cancel();
                throw;
            }
        }
        _barrier.SignalAndWait(token);
        using (var scope = new TensorScope()) Op.CopyInto(Op.To(_sum!, flat.Device), flat);
        _barrier.SignalAndWait(token);
        _posted[rank] = null;
        if (rank == 0)
        {
            _sum!.Dispose();
            _sum = null;
        }
    }

    public void Abort() => _abort.Cancel();

    public void Dispose()
    {
        _sum?.Dispose();
        _barrier.Dispose();
        _abort.Dispose();
    }

    private sealed class RankHandle(HostAllReduceGroup group, int rank) : IGradientAllReduce
    {
        public int Rank => rank;
        public int WorldSize => group.WorldSize;
        public void SumInPlace(Tensor flat)
        {
            ArgumentNullException.ThrowIfNull(flat);
            group.Sum(rank, flat);
        }

        public void Abort() => group.Abort();
        public void Dispose()
        {
            if (rank == 0) group.Dispose();
        }
    }
}

/// <summary>
/// Gradient bucketing for one rank: the gradients of each dtype are copied, in parameter order, into one persistent flat
/// buffer on the rank's device; each buffer is summed over the ranks in one collective call and multiplied by 1/world
/// size (the mean), then copied back. One collective per dtype per step instead of one per tensor.
/// </summary>
public sealed class GradientBuckets : IDisposable
{
    private readonly IGradientAllReduce _reduce;
    private readonly Dictionary<DType, Tensor> _flat = [];

    public GradientBuckets(IGradientAllReduce reduce)
    {
        ArgumentNullException.ThrowIfNull(reduce);
        _reduce = reduce;
    }

    /// <summary>Replaces every gradient by its mean over the ranks.</summary>
    public void AverageInPlace(IReadOnlyList<Tensor> grads)
    {
        ArgumentNullException.ThrowIfNull(grads);
        if (grads.Count == 0) return;
        foreach (var dtype in DTypesInOrder(grads))
        {
            if (ContiguousRun(grads, dtype) is { } whole)
            {
                // the gradients already are consecutive views of one buffer (FlatGradients): reduce it in place, no packing
                using (whole)
                {
                    _reduce.SumInPlace(whole);
                    if (_reduce.WorldSize != 1)
                        using (var scope = new TensorScope()) Op.CopyInto(Op.Binary(BinaryOp.Mul, whole, 1.0 / _reduce.WorldSize), whole);
                }
                continue;
            }
            long total = 0;
            foreach (var g in grads) if (g.DType == dtype) total += g.Shape.Numel;
            var flat = Buffer(dtype, total, grads[0].Device);
            long at = 0;
            foreach (var g in grads)
            {
                if (g.DType != dtype) continue;
                using var view = View(flat, at, g.Shape);
                Op.CopyInto(g, view);
                at += g.Shape.Numel;
            }
            _reduce.SumInPlace(flat);
            at = 0;
            using (var scope = new TensorScope())
            {
                var mean = _reduce.WorldSize == 1 ? flat : Op.Binary(BinaryOp.Mul, flat, 1.0 / _reduce.WorldSize);
                foreach (var g in grads)
                {
                    if (g.DType != dtype) continue;
                    using var view = View(mean, at, g.Shape);
                    Op.CopyInto(view, g);
                    at += g.Shape.Numel;
                }
            }
        }
    }

    /// <summary>A flat view over the gradients of <paramref name="dtype"/> when they are contiguous and follow each other in one
    /// storage in parameter order (the caller disposes it), else null.</summary>
    internal static Tensor? ContiguousRun(IReadOnlyList<Tensor> grads, DType dtype)
    {
        Tensor? first = null;
        long next = 0, total = 0;
        foreach (var g in grads)
        {
            if (g.DType != dtype) continue;
            if (!g.IsContiguous()) return null;
            if (first is null) { first = g; next = g.Offset; }
            else if (!ReferenceEquals(g.Storage, first.Storage) || g.Offset != next) return null;
            next += g.Numel;
            total += g.Numel;
        }
        if (first is null || total == 0 || total > int.MaxValue) return null;
        return Tensor.AsStrided(first.Storage, new Shape((int)total), [1L], first.Offset, dtype);
    }

    private static List<DType> DTypesInOrder(IReadOnlyList<Tensor> grads)
    {
        var list = new List<DType>(2);
        foreach (var g in grads) if (!list.Contains(g.DType)) list.Add(g.DType);
        return list;
    }

    private static Tensor View(Tensor flat, long at, Shape shape)
    {
        using var slice = flat.Slice(0, checked((int)at), checked((int)(at + shape.Numel)));
        return slice.Reshape(shape.ToArray());
    }

    private Tensor Buffer(DType dtype, long elements, Device device)
    {
        if (_flat.TryGetValue(dtype, out var b) && b.Shape.Numel == elements && b.Device == device) return b;
        b?.Dispose();
        using (TensorScope.Untracked()) b = Tensor.Empty(new Shape(checked((int)elements)), dtype, device);
        _flat[dtype] = b;
        return b;
    }

    public void Dispose()
    {
        foreach (var b in _flat.Values) b.Dispose();
        _flat.Clear();
    }
}
