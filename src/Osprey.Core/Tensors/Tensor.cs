using System.Runtime.InteropServices;
using Osprey.Core.Backends;

namespace Osprey.Core.Tensors;

/// <summary>
/// An n-dimensional view of a <see cref="Storage"/>: shape, strides and offset in elements, and a dtype.
/// Each Tensor object holds one reference to its storage and must be disposed; views share the storage
/// and keep it alive. 4-D image tensors always have the logical shape N,C,H,W; NHWC is a memory format.
/// Operations live in <see cref="Ops.Op"/>; the methods here only describe or re-view memory.
/// </summary>
public sealed partial class Tensor : IDisposable
{
    private readonly long[] _strides;
    private bool _disposed;

    /// <summary>Wraps a storage reference that the caller hands over (the tensor releases it on dispose).</summary>
    internal Tensor(Storage storage, Shape shape, long[] strides, long offset, DType dtype)
    {
        if (strides.Length != shape.Rank) throw new ArgumentException("strides and shape differ in rank");
        Storage = storage;
        Shape = shape;
        _strides = strides;
        Offset = offset;
        DType = dtype;
        TensorScope.Track(this);
    }

    public Storage Storage { get; }
    public Shape Shape { get; }
    public DType DType { get; }

    /// <summary>Offset of the first element from the storage start, in elements.</summary>
    public long Offset { get; }

    /// <summary>Strides in elements; 0 along broadcast dimensions.</summary>
    public ReadOnlySpan<long> Strides => _strides;

    public IBackend Backend => Storage.Backend;
    public Device Device => Storage.Backend.Device;
    public int Rank => Shape.Rank;
    public long Numel => Shape.Numel;
    public int ElementSize => DType.SizeOf();
    public bool IsDisposed => _disposed;

    /// <summary>Address of element 0 (host or device).</summary>
    public nint DataPointer => Storage.Pointer + (nint)(Offset * ElementSize);

    // ---------- creation ----------

    /// <summary>An uninitialised tensor.</summary>
    public static Tensor Empty(Shape shape, DType dtype, Device? device = null, MemoryFormat format = MemoryFormat.Contiguous)
    {
        var backend = BackendRegistry.Get(device ?? Device.Cpu);
        long bytes = checked(shape.Numel * dtype.SizeOf());
        long[] strides = format == MemoryFormat.ChannelsLast ? shape.ChannelsLastStrides() : shape.ContiguousStrides();
        return new Tensor(Storage.Allocate(backend, bytes), shape, strides, 0, dtype);
    }

    public static Tensor Full(Shape shape, double value, DType dtype = DType.Float32, Device? device = null)
    {
        var t = Empty(shape, dtype, device);
        t.Backend.Fill(t, value);
        return t;
    }

    public static Tensor Zeros(Shape shape, DType dtype = DType.Float32, Device? device = null) => Full(shape, 0, dtype, device);

    /// <summary>A tensor holding a copy of <paramref name="data"/> (row-major) with the given shape.</summary>
    public static Tensor FromSpan<T>(ReadOnlySpan<T> data, Shape shape, Device? device = null) where T : unmanaged
    {
        if (data.Length != shape.Numel)
            throw new OpArgumentException($"from_array: {data.Length} values do not fill shape {shape} ({shape.Numel} elements)");
        var t = Empty(shape, DTypeExtensions.Of<T>(), device);
        t.Backend.Upload(MemoryMarshal.AsBytes(data), t.Storage, 0);
        return t;
    }

    public static Tensor FromArray<T>(T[] data, params int[] shape) where T : unmanaged =>
        FromSpan<T>(data, shape.Length == 0 && data.Length != 1 ? new Shape(data.Length) : new Shape(shape));

    public static Tensor Scalar(float value, Device? device = null) => FromSpan<float>([value], Shape.Scalar, device);

    /// <summary>Copies the elements, in logical row-major order, to a new host array.</summary>
    public T[] ToArray<T>() where T : unmanaged
    {
        ThrowIfDisposed();
        if (DTypeExtensions.Of<T>() != DType)
            throw new OpArgumentException($"to_array: tensor is {DType.Name()}, asked for {typeof(T).Name}");
        var result = new T[Numel];
        if (IsContiguous())
        {
            Backend.Download(Storage, Offset * ElementSize, MemoryMarshal.AsBytes(result.AsSpan()));
            return result;
        }
        using var c = Ops.Op.Contiguous(this);
        c.Backend.Download(c.Storage, c.Offset * ElementSize, MemoryMarshal.AsBytes(result.AsSpan()));
        return result;
    }

    /// <summary>The single value of a one-element tensor.</summary>
    public T Item<T>() where T : unmanaged
    {
        if (Numel != 1) throw new OpArgumentException($"item: tensor of shape {Shape} has {Numel} elements, not 1");
        return ToArray<T>()[0];
    }

    // ---------- layout queries ----------

    public bool IsContiguous(MemoryFormat format = MemoryFormat.Contiguous)
    {
        if (format == MemoryFormat.ChannelsLast && Rank != 4) return false;
        long[] want = format == MemoryFormat.ChannelsLast ? Shape.ChannelsLastStrides() : Shape.ContiguousStrides();
        for (int i = 0; i < Rank; i++)
            if (Shape[i] > 1 && _strides[i] != want[i]) return false;
        return true;
    }

    /// <summary>The memory format a 4-D tensor is dense in, if any.</summary>
    public MemoryFormat? DenseFormat =>
        IsContiguous() ? MemoryFormat.Contiguous : IsContiguous(MemoryFormat.ChannelsLast) ? MemoryFormat.ChannelsLast : null;

    // ---------- ownership ----------

    /// <summary>
    /// A view with explicit shape, strides and offset (in elements) over a storage, holding its own reference
    /// (torch.as_strided). Every element it can reach must lie inside the storage; the engine uses this to place
    /// tensors in one planned arena.
    /// </summary>
    public static Tensor AsStrided(Storage storage, Shape shape, ReadOnlySpan<long> strides, long offset, DType dtype)
    {
        ArgumentNullException.ThrowIfNull(storage);
        if (strides.Length != shape.Rank)
            OpArgumentException.Throw("as_strided", $"{strides.Length} strides for shape {shape}");
        long lo = offset, hi = offset;
        for (int i = 0; i < shape.Rank; i++)
        {
            if (shape[i] == 0) { lo = 0; hi = -1; break; }
            long span = checked((shape[i] - 1) * strides[i]);
            if (span < 0) lo = checked(lo + span); else hi = checked(hi + span);
        }
        if (hi >= lo && (lo < 0 || checked((hi + 1) * dtype.SizeOf()) > storage.Bytes))
            OpArgumentException.Throw("as_strided", $"view {shape} with strides [{string.Join(", ", strides.ToArray())}] at offset {offset} " +
                $"reaches elements [{lo}, {hi}] outside a storage of {storage.Bytes} bytes ({dtype.Name()})");
        storage.AddRef();
        return new Tensor(storage, shape, strides.ToArray(), offset, dtype);
    }

    /// <summary>A second handle to the same view (shares the storage; dispose both).</summary>
    public Tensor Share() => Recorded(View(Shape, _strides, Offset), "share");

    /// <summary><see cref="Share"/> without recording on a tape (for ops preparing their own operands).</summary>
    internal Tensor ShareView() => View(Shape, _strides, Offset);

    internal Tensor View(Shape shape, long[] strides, long offset)
    {
        ThrowIfDisposed();
        Storage.AddRef();
        return new Tensor(Storage, shape, strides, offset, DType);
    }

    public void ThrowIfDisposed()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Storage.Release();
    }

    public override string ToString() => $"Tensor({Shape}, {DType.Name()}, {Device})";
}
