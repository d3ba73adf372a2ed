using System.Collections.Concurrent;
using Osprey.Core.Cpu;
using Osprey.Core.Tensors;

namespace Osprey.Core.Backends;

/// <summary>
/// Finds the backend for a device. The CPU backend is always there; other assemblies add theirs
/// with <see cref="RegisterProvider"/> (the CUDA assembly registers a factory that opens devices lazily).
/// </summary>
public static class BackendRegistry
{
    private static readonly ConcurrentDictionary<Device, IBackend> s_backends = new();
    private static readonly ConcurrentDictionary<DeviceType, Func<int, IBackend>> s_providers = new();

    public static IBackend Cpu { get; } = s_backends.GetOrAdd(Device.Cpu, _ => new CpuBackend());

    public static void RegisterProvider(DeviceType type, Func<int, IBackend> open) => s_providers[type] = open;

    public static bool HasProvider(DeviceType type) => type == DeviceType.Cpu || s_providers.ContainsKey(type);

    /// <summary>
    /// Makes one backend instance the backend of its device until <see cref="Detach"/> (the engine's tracer
    /// attaches a fresh meta backend per trace). Throws if the device already has a backend.
    /// </summary>
    public static void Attach(IBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (!s_backends.TryAdd(backend.Device, backend))
            throw new OspreyException($"device {backend.Device} already has a backend");
    }

    /// <summary>Removes a backend added by <see cref="Attach"/>.</summary>
    public static void Detach(IBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ((ICollection<KeyValuePair<Device, IBackend>>)s_backends).Remove(new(backend.Device, backend));
    }

    public static IBackend Get(Device device)
    {
        if (s_backends.TryGetValue(device, out var b)) return b;
        if (!s_providers.TryGetValue(device.Type, out var open))
            throw new OspreyException($"no backend for device {device}: " +
                (device.Type == DeviceType.Cuda ? "the CUDA backend is not registered (call CudaBackend.Register())" : "unknown device type"));
        return s_backends.GetOrAdd(device, d => open(d.Index));
    }
}
