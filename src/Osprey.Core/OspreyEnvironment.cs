namespace Osprey.Core;

/// <summary>
/// Every environment variable Osprey reads, read here and nowhere else. Values are read when asked,
/// so a test can set a variable before the first use; nothing here caches or mutates global state.
/// </summary>
public static class OspreyEnvironment
{
    /// <summary>OSPREY_CUDA_PATH: a folder (or ':'-separated folders) searched first for CUDA libraries; a CUDA toolkit root also works.</summary>
    public static IReadOnlyList<string> CudaPaths => Split(Get("OSPREY_CUDA_PATH"));

    /// <summary>CUDA_PATH / CUDA_HOME: the toolkit root that the CUDA installers and build tools set.</summary>
    public static IReadOnlyList<string> CudaToolkitRoots =>
        [.. Split(Get("CUDA_PATH")), .. Split(Get("CUDA_HOME"))];

    /// <summary>LD_LIBRARY_PATH: the folders the system loader searches before its cache.</summary>
    public static IReadOnlyList<string> LibraryPath => Split(Get("LD_LIBRARY_PATH"));

    /// <summary>
    /// OSPREY_CACHE_DIR: where compiled kernels (and other derived files) are cached. Default:
    /// $XDG_CACHE_HOME/osprey, else ~/.cache/osprey (the user's local application data folder on Windows).
    /// </summary>
    public static string CacheDirectory
    {
        get
        {
            if (Get("OSPREY_CACHE_DIR") is { } dir) return dir;
            if (Get("XDG_CACHE_HOME") is { } xdg) return Path.Combine(xdg, "osprey");
            string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            if (OperatingSystem.IsWindows())
                return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "osprey", "cache");
            if (string.IsNullOrEmpty(home)) return Path.Combine(Path.GetTempPath(), "osprey-cache");
            return Path.Combine(home, ".cache", "osprey");
        }
    }

    /// <summary>OSPREY_KERNEL_CACHE=0 turns the on-disk kernel cache off (every process compiles afresh).</summary>
    public static bool KernelCacheEnabled => Get("OSPREY_KERNEL_CACHE") is not ("0" or "false" or "off");

    /// <summary>OSPREY_CUDA_POISON=1 fills every new device allocation with 0xFF bytes (NaN / -1), so tests catch unwritten outputs.</summary>
    public static bool PoisonDeviceMemory => Get("OSPREY_CUDA_POISON") is "1" or "true" or "on";

    private static string? Get(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;

    private static string[] Split(string? value) =>
        value is null ? [] : value.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
