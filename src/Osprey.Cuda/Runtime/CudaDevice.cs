using System.Text;
using Osprey.Cuda.Native;

namespace Osprey.Cuda.Runtime;

/// <summary>What the driver says about one GPU.</summary>
public sealed record CudaDeviceInfo(
    int Index, string Name, int Major, int Minor, long TotalMemory, int Multiprocessors,
    int L2CacheBytes, int MaxThreadsPerBlock, int MaxSharedMemoryPerBlockOptin, int MemoryBusWidth, int MemoryClockKHz)
{
    /// <summary>"sm_90" for compute capability 9.0.</summary>
    public string Architecture => $"sm_{Major}{Minor}";

    /// <summary>Theoretical DRAM bandwidth (bytes/s) from clock and bus width (double data rate).</summary>
    public double PeakBandwidth => 2.0 * MemoryClockKHz * 1e3 * MemoryBusWidth / 8;
}

/// <summary>Driver initialisation and device queries. The first call initialises the driver.</summary>
public static unsafe class CudaDriver
{
    private static readonly Lazy<int> s_init = new(() =>
    {
        NativeLibraries.Load(NativeLibraries.Cuda);
        CuDriver.Check(CuDriver.cuInit(0));
        return 0;
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Loads libcuda and calls cuInit once; throws with the paths tried or the driver's error.</summary>
    public static void EnsureInitialized() => _ = s_init.Value;

    /// <summary>Number of CUDA devices, or 0 with the reason when there is no usable driver or device.</summary>
    public static int DeviceCount(out string? whyNone)
    {
        try
        {
            EnsureInitialized();
            CuDriver.Check(CuDriver.cuDeviceGetCount(out int n));
            whyNone = n == 0 ? "the CUDA driver reports no devices" : null;
            return n;
        }
        catch (CudaLibraryNotFoundException e) { whyNone = "no CUDA driver (libcuda.so.1 not found)"; _ = e; return 0; }
        catch (CudaException e) { whyNone = e.Message; return 0; }
    }

    /// <summary>Driver API version as (major, minor), e.g. (13, 0).</summary>
    public static (int Major, int Minor) DriverVersion()
    {
        EnsureInitialized();
        CuDriver.Check(CuDriver.cuDriverGetVersion(out int v));
        return (v / 1000, v % 1000 / 10);
    }

    public static CudaDeviceInfo Describe(int index)
    {
        int dev = DeviceHandle(index);
        byte* name = stackalloc byte[256];
        CuDriver.Check(CuDriver.cuDeviceGetName(name, 256, dev));
        CuDriver.Check(CuDriver.cuDeviceTotalMem(out nuint total, dev));
        int Attr(CuDeviceAttribute a) { CuDriver.Check(CuDriver.cuDeviceGetAttribute(out int v, a, dev)); return v; }
        return new CudaDeviceInfo(index, Encoding.UTF8.GetString(new ReadOnlySpan<byte>(name, 256).TrimEnd((byte)0)).TrimEnd('\0'),
            Attr(CuDeviceAttribute.ComputeCapabilityMajor), Attr(CuDeviceAttribute.ComputeCapabilityMinor), (long)total,
            Attr(CuDeviceAttribute.MultiprocessorCount), Attr(CuDeviceAttribute.L2CacheSize), Attr(CuDeviceAttribute.MaxThreadsPerBlock),
            Attr(CuDeviceAttribute.MaxSharedMemoryPerBlockOptin), Attr(CuDeviceAttribute.GlobalMemoryBusWidth), Attr(CuDeviceAttribute.MemoryClockRate));
    }

    /// <summary>The driver's handle of device <paramref name="index"/>; throws naming the index and the device count when out of range.</summary>
    public static int DeviceHandle(int index)
    {
        EnsureInitialized();
        CuDriver.Check(CuDriver.cuDeviceGetCount(out int n));
        if (index < 0 || index >= n)
            throw new CudaException($"cuda:{index}: no such device (this machine has {n} CUDA device{(n == 1 ? "" : "s")})");
        CuDriver.Check(CuDriver.cuDeviceGet(out int dev, index));
        return dev;
    }
}

/// <summary>
/// The primary context of one device, retained for this object's lifetime. Driver calls need it current
/// on the calling thread: <see cref="MakeCurrent"/> is cheap when it already is.
/// </summary>
public sealed class CudaContext : IDisposable
{
    [ThreadStatic] private static nint t_current;
    private readonly int _device;
    private bool _disposed;

    public CudaContext(int index)
    {
        _device = CudaDriver.DeviceHandle(index);
        CuDriver.Check(CuDriver.cuDevicePrimaryCtxRetain(out nint ctx, _device));
        Handle = ctx;
        Index = index;
        MakeCurrent();
    }

    public nint Handle { get; }
    public int Index { get; }

    public void MakeCurrent()
    {
        if (t_current == Handle) return;
        CuDriver.Check(CuDriver.cuCtxSetCurrent(Handle));
        t_current = Handle;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (t_current == Handle) t_current = 0;
        CuDriver.cuDevicePrimaryCtxRelease(_device);
    }
}
