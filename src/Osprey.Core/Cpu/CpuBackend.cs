using System.Runtime.InteropServices;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

/// <summary>
/// The CPU backend: the numerical reference every other backend is tested against, and a fast
/// backend in its own right (SIMD, multithreaded). Its kernels live in the partial files beside this
/// one, one file per op family. Memory is 64-byte aligned native memory, never moved by the GC.
/// </summary>
public sealed partial class CpuBackend : IBackend
{
    private const int Alignment = 64;

    public Device Device => Device.Cpu;

    public string Name => $"{Environment.ProcessorCount}-thread CPU ({RuntimeInformation.ProcessArchitecture})";

    public MemoryStats Memory { get; } = new();

    public unsafe nint Alloc(long bytes)
    {
        nint p;
        try
        {
            p = (nint)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), Alignment);
        }
        catch (OutOfMemoryException e)
        {
            throw new OutOfDeviceMemoryException($"cpu: could not allocate {bytes:N0} bytes", e);
        }
        Memory.OnAlloc(bytes);
        return p;
    }

    public unsafe void Free(Storage storage)
    {
        ArgumentNullException.ThrowIfNull(storage);
        NativeMemory.AlignedFree((void*)storage.Pointer);
        Memory.OnFree(storage.Bytes);
    }

    public unsafe void Upload(ReadOnlySpan<byte> source, Storage destination, long byteOffset)
    {
        ArgumentNullException.ThrowIfNull(destination);
        CheckRange(destination, byteOffset, source.Length);
        source.CopyTo(new Span<byte>((byte*)destination.Pointer + byteOffset, source.Length));
    }

    public unsafe void Download(Storage source, long byteOffset, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(source);
        CheckRange(source, byteOffset, destination.Length);
        new ReadOnlySpan<byte>((byte*)source.Pointer + byteOffset, destination.Length).CopyTo(destination);
    }

    private static void CheckRange(Storage s, long offset, long length)
    {
        if (offset < 0 || length < 0 || offset + length > s.Bytes)
            throw new ArgumentOutOfRangeException(nameof(offset), $"bytes [{offset}, {offset + length}) outside a storage of {s.Bytes} bytes");
    }

    public void Synchronize() { }

    public void Dispose() { }

    /// <summary>The elements a tensor can reach through its strides, as a span starting at its first element.</summary>
    internal static unsafe Span<T> Data<T>(Tensor t) where T : unmanaged
    {
        long remaining = t.Storage.Bytes / sizeof(T) - t.Offset;
        return new Span<T>((T*)t.DataPointer, (int)Math.Min(remaining, int.MaxValue));
    }
}
