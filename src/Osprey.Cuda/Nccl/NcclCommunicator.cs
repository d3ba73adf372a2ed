using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Cuda.Native;

namespace Osprey.Cuda.Nccl;

/// <summary>
/// One rank's NCCL communicator, owned: <see cref="Dispose"/> destroys it (ncclCommDestroy, which waits for its queued
/// operations), <see cref="Abort"/> tears it down without waiting (after a failure on another rank; safe from any thread).
/// Collectives are queued on the stream of the CUDA backend the communicator belongs to, so they are ordered with the
/// backend's other work and the host does not wait.
/// </summary>
public sealed unsafe class NcclCommunicator : IDisposable
{
    private readonly NcclApi _api;
    private readonly CudaBackend _backend;
    private nint _comm;
    private int _released;

    private NcclCommunicator(NcclApi api, CudaBackend backend, nint comm, int rank, int size)
    {
        _api = api;
        _backend = backend;
        _comm = comm;
        Rank = rank;
        WorldSize = size;
    }

    public int Rank { get; }
    public int WorldSize { get; }
    public CudaBackend Backend => _backend;

    /// <summary>ncclCommInitRank on <paramref name="backend"/>'s device: blocks until all <paramref name="worldSize"/> ranks
    /// (threads of this process or other processes/hosts) have called it with the same id. Call from the thread that will
    /// drive this rank.</summary>
    public static NcclCommunicator InitRank(CudaBackend backend, NcclUniqueId id, int rank, int worldSize)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (worldSize < 1 || rank < 0 || rank >= worldSize)
            throw new ArgumentOutOfRangeException(nameof(rank), $"nccl: rank {rank} of a world of {worldSize}");
        var api = NcclApi.Instance;
        backend.MakeCurrent();   // NCCL takes the device from the current (primary) context
        nint comm;
        api.Check(api.CommInitRank(&comm, worldSize, id, rank), call: $"ncclCommInitRank(rank {rank} of {worldSize}, {backend.Device})");
        return Wrap(api, backend, comm, rank, worldSize);
    }

    /// <summary>ncclCommInitAll: one communicator per backend (rank i = backends[i]), created by one thread. The calling
    /// thread's current CUDA context is restored afterwards (NCCL switches devices while it initialises).</summary>
    public static NcclCommunicator[] InitAll(IReadOnlyList<CudaBackend> backends)
    {
        ArgumentNullException.ThrowIfNull(backends);
        if (backends.Count == 0) throw new ArgumentException("nccl: ncclCommInitAll needs at least one device", nameof(backends));
        var devices = new int[backends.Count];
        for (int i = 0; i < devices.Length; i++)
        {
            devices[i] = backends[i].Device.Index;
            for (int j = 0; j < i; j++)
                if (devices[j] == devices[i]) throw new ArgumentException($"nccl: device {backends[i].Device} listed twice", nameof(backends));
        }
        var api = NcclApi.Instance;
        var comms = new nint[devices.Length];
        CuDriver.Check(CuDriver.cuCtxGetCurrent(out nint before));
        try
        {
            fixed (nint* pc = comms)
            fixed (int* pd = devices)
                api.Check(api.CommInitAll(pc, devices.Length, pd), call: $"ncclCommInitAll({devices.Length} devices: {string.Join(",", devices)})");
        }
        finally
        {
            CuDriver.Check(CuDriver.cuCtxSetCurrent(before));
        }
        var result = new NcclCommunicator[devices.Length];
        try
        {
            for (int i = 0; i < result.Length; i++) result[i] = Wrap(api, backends[i], comms[i], i, devices.Length);
            return result;
        }
        catch
        {
            foreach (var c in result) c?.Dispose();
            for (int i = 0; i < comms.Length; i++) if (result[i] is null) api.CommDestroy(comms[i]);
            throw;
        }
    }

    private static NcclCommunicator Wrap(NcclApi api, CudaBackend backend, nint comm, int rank, int size)
    {
        try
        {
            int n, r, dev;
            api.Check(api.CommCount(comm, &n), comm);
            api.Check(api.CommUserRank(comm, &r), comm);
            api.Check(api.CommCuDevice(comm, &dev), comm);
            if (n != size || r != rank || dev != backend.Device.Index)
                throw new CudaException($"nccl: communicator reports rank {r} of {n} on device {dev}, expected rank {rank} of {size} on {backend.Device}");
            return new NcclCommunicator(api, backend, comm, rank, size);
        }
        catch
        {
            api.CommAbort(comm);
            throw;
        }
    }

    /// <summary>In-place all-reduce of a contiguous tensor on this rank's device, queued on its backend's stream. Every rank
    /// must call it with the same element count and dtype, in the same order as its other collectives.</summary>
    public void AllReduce(Tensor tensor, NcclReduceOp op = NcclReduceOp.Sum)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        tensor.ThrowIfDisposed();
        if (tensor.Device != _backend.Device)
            throw new ArgumentException($"nccl all-reduce: tensor on {tensor.Device}, communicator rank {Rank} on {_backend.Device}");
        if (!tensor.IsContiguous()) throw new ArgumentException($"nccl all-reduce: the tensor {tensor.Shape} must be contiguous");
        var type = NcclApi.DataType(tensor.DType);
        nint comm = Handle;
        _backend.MakeCurrent();
        void* p = (void*)tensor.DataPointer;
        _api.Check(_api.AllReduce(p, p, (nuint)tensor.Shape.Numel, type, op, comm, _backend.Stream.Handle), comm,
            $"ncclAllReduce({tensor.Shape.Numel} x {tensor.DType.Name()}, {op}, rank {Rank} of {WorldSize})");
    }

    /// <summary>In-place broadcast of a contiguous tensor from <paramref name="root"/> to every rank (queued on the stream).</summary>
    public void Broadcast(Tensor tensor, int root = 0)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        tensor.ThrowIfDisposed();
        if (tensor.Device != _backend.Device)
            throw new ArgumentException($"nccl broadcast: tensor on {tensor.Device}, communicator rank {Rank} on {_backend.Device}");
        if (!tensor.IsContiguous()) throw new ArgumentException($"nccl broadcast: the tensor {tensor.Shape} must be contiguous");
        if (root < 0 || root >= WorldSize) throw new ArgumentOutOfRangeException(nameof(root), $"nccl broadcast: root {root} of {WorldSize} ranks");
        var type = NcclApi.DataType(tensor.DType);
        nint comm = Handle;
        _backend.MakeCurrent();
        void* p = (void*)tensor.DataPointer;
        _api.Check(_api.Broadcast(p, p, (nuint)tensor.Shape.Numel, type, root, comm, _backend.Stream.Handle), comm,
            $"ncclBroadcast({tensor.Shape.Numel} x {tensor.DType.Name()}, root {root})");
    }

    /// <summary>Throws if NCCL has recorded an asynchronous error on this communicator (a peer died, a network failure).</summary>
    public void ThrowIfAsyncError()
    {
        nint comm = Handle;
        int error;
        _api.Check(_api.CommGetAsyncError(comm, &error), comm);
        _api.Check(error, comm, $"ncclCommGetAsyncError(rank {Rank} of {WorldSize})");
    }

    private nint Handle
    {
        get
        {
            nint c = Volatile.Read(ref _comm);
            ObjectDisposedException.ThrowIf(c == 0, this);
            return c;
        }
    }

    /// <summary>ncclCommAbort: frees the communicator without waiting for pending operations (they fail); use after another
    /// rank failed, so that no rank waits forever. Safe to call from any thread, once or more.</summary>
    public void Abort()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        nint c = Interlocked.Exchange(ref _comm, 0);
        if (c != 0)
        {
            _backend.MakeCurrent();
            _api.CommAbort(c);   // the status is moot: the communicator is gone either way
        }
    }

    /// <summary>ncclCommDestroy (waits for this rank's queued operations).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        nint c = Interlocked.Exchange(ref _comm, 0);
        if (c == 0) return;
        _backend.MakeCurrent();
        _api.Check(_api.CommDestroy(c), call: $"ncclCommDestroy(rank {Rank})");
    }

    public override string ToString() => $"NcclCommunicator(rank {Rank} of {WorldSize} on {_backend.Device})";
}
