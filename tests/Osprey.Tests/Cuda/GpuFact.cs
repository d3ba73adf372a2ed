using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Cuda;

namespace Osprey.Tests.Cuda;

/// <summary>Whether this machine can run GPU tests, decided once: a CUDA device must open.</summary>
public static class Gpu
{
    private static readonly Lazy<string?> s_skip = new(() =>
    {
        CudaBackend.Register();
        // new device allocations are filled with 0xFF (NaN / -1) so that unwritten outputs fail the checks
        Environment.SetEnvironmentVariable("OSPREY_CUDA_POISON", "1");
        try
        {
            if (!CudaBackend.IsAvailable(out string reason)) return $"no CUDA GPU: {reason}";
            _ = BackendRegistry.Get(Device.Cuda(0));
            return null;
        }
        catch (Exception e) when (e is Osprey.Core.OspreyException or DllNotFoundException or EntryPointNotFoundException)
        {
            return $"no CUDA GPU: {e.Message}";
        }
    });

    /// <summary>Null when a GPU is usable, otherwise why not.</summary>
    public static string? SkipReason => s_skip.Value;

    public static Device Device => Device.Cuda(0);

    public static CudaBackend Backend => (CudaBackend)BackendRegistry.Get(Device);
}

/// <summary>A test that needs a CUDA GPU; skipped (with the reason) where none can be opened.</summary>
public sealed class GpuFactAttribute : FactAttribute
{
    public GpuFactAttribute()
    {
        if (Gpu.SkipReason is { } why) Skip = why;
    }
}

/// <summary>A theory that needs a CUDA GPU; skipped (with the reason) where none can be opened.</summary>
public sealed class GpuTheoryAttribute : TheoryAttribute
{
    public GpuTheoryAttribute()
    {
        if (Gpu.SkipReason is { } why) Skip = why;
    }
}

/// <summary>GPU tests run one at a time (they share one device, and leak checks read its counters).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GpuCollection
{
    public const string Name = "gpu";
}
