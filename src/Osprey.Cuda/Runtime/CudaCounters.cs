namespace Osprey.Cuda.Runtime;

/// <summary>
/// Process-wide diagnostic counts for step profiles (`Osprey.Bench gpu-train --profile`): kernel launches queued through
/// <see cref="Launch"/> (NVRTC kernels; cuDNN and cuBLASLt calls are not counted) and host blocks on the GPU (stream and event
/// synchronisations, which every download ends with). Read a count before and after the work and take the difference.
/// </summary>
public static class CudaCounters
{
    private static long s_launches, s_hostSyncs;

    /// <summary>Kernel launches queued through <see cref="Launch"/> since the process started.</summary>
    public static long Launches => Interlocked.Read(ref s_launches);

    /// <summary>Host waits on a stream or event since the process started.</summary>
    public static long HostSyncs => Interlocked.Read(ref s_hostSyncs);

    internal static void CountLaunch() => Interlocked.Increment(ref s_launches);

    internal static void CountSync() => Interlocked.Increment(ref s_hostSyncs);
}
