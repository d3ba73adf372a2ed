using System.Globalization;
using System.Reflection;
using Osprey.Core.Cpu;

namespace Osprey.Engine.Serialization;

/// <summary>
/// What an engine is built for: the device architecture ("cpu", or a GPU's "sm_90"), the Osprey version, and a
/// hash of the kernel sources it was built (and its algorithms measured) with. A file loads only on an equal target.
/// </summary>
public sealed record EngineTarget(string Architecture, string OspreyVersion, string KernelHash)
{
    /// <summary>This build's version string.</summary>
    public static string CurrentVersion { get; } =
        typeof(EngineTarget).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(EngineTarget).Assembly.GetName().Version?.ToString() ?? "unknown";

    /// <summary>The CPU backend: its kernels are compiled into Osprey.Core, so the assembly's module id stands for their hash.</summary>
    public static EngineTarget Cpu { get; } = new("cpu", CurrentVersion,
        typeof(CpuBackend).Assembly.ManifestModule.ModuleVersionId.ToString("N", CultureInfo.InvariantCulture));
}

/// <summary>The header of an engine file.</summary>
public sealed record EngineHeader(int FormatVersion, EngineTarget Target, IReadOnlyDictionary<string, string> BuildOptions);
