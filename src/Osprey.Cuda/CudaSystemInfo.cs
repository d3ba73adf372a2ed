using Osprey.Cuda.Native;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda;

/// <summary>One CUDA library as found (path and version) or not (every path tried).</summary>
public sealed record CudaLibraryStatus(string Name, bool Found, string? Path, string? Version, IReadOnlyList<string> Tried);

/// <summary>What `osprey info` shows about CUDA: driver, devices and libraries. Collecting it never throws.</summary>
public sealed record CudaSystemInfo(string? KernelDriver, string? DriverApi, string? Problem, IReadOnlyList<CudaDeviceInfo> Devices, IReadOnlyList<CudaLibraryStatus> Libraries)
{
    public static CudaSystemInfo Collect()
    {
        string? problem = null, api = null;
        var devices = new List<CudaDeviceInfo>();
        int n = CudaDriver.DeviceCount(out string? why);
        if (n == 0) problem = why;
        else
        {
            try
            {
                var (maj, min) = CudaDriver.DriverVersion();
                api = $"{maj}.{min}";
                for (int i = 0; i < n; i++) devices.Add(CudaDriver.Describe(i));
            }
            catch (CudaException e) { problem = e.Message; }
        }
        var libs = new List<CudaLibraryStatus>();
        foreach (var spec in NativeLibraries.All)
        {
            var (handle, probe) = LibraryResolver.TryLoad(spec);
            string? version = null;
            if (handle != 0 && (spec.Name != NativeLibraries.Cuda || n > 0)) version = LibraryVersions.Of(spec.Name);
            libs.Add(new CudaLibraryStatus(spec.Name["osprey-".Length..], handle != 0, probe.Path, version, probe.Tried));
        }
        return new CudaSystemInfo(KernelDriverVersion(), api, problem, devices, libs);
    }

    /// <summary>The NVIDIA kernel driver's version (Linux: /proc/driver/nvidia/version), if present.</summary>
    private static string? KernelDriverVersion()
    {
        const string file = "/proc/driver/nvidia/version";
        try
        {
            if (!File.Exists(file)) return null;
            string first = File.ReadLines(file).FirstOrDefault() ?? "";
            var parts = first.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return parts.FirstOrDefault(p => p.Count(c => c == '.') >= 1 && char.IsDigit(p[0])) ?? first;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }
}
