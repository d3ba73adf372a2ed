using Osprey.Core.Tensors;
using Osprey.Cuda.Runtime;

namespace Osprey.Cli.Commands;

/// <summary>`osprey train --devices`: "all", GPU indices ("0,1") or device names ("cuda:0,cuda:1"; "cpu,cpu" for CPU replicas).</summary>
public static class TrainDevices
{
    /// <param name="minimum">Devices needed (2 on one node; 1 per node of a multi-node run).</param>
    public static IReadOnlyList<Device> Parse(string text, int minimum = 2)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Trim().Equals("all", StringComparison.OrdinalIgnoreCase))
        {
            int n = CudaDriver.DeviceCount(out string? why);
            if (n < Math.Max(1, minimum)) throw new ArgumentException($"--devices all: data-parallel training needs at least {Math.Max(1, minimum)} GPU(s), this machine has {n}{(why is null ? "" : $" ({why})")}");
            return Enumerable.Range(0, n).Select(i => Device.Cuda(i)).ToArray();
        }
        var list = new List<Device>();
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (part.Length == 0) throw new ArgumentException($"--devices {text}: an empty entry");
            if (int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int index))
                list.Add(Device.Cuda(index));
            else
            {
                try { list.Add(Device.Parse(part)); }
                catch (FormatException e) { throw new ArgumentException($"--devices {text}: '{part}' is not a GPU index or device ({e.Message})", e); }
            }
        }
        if (list.Count < minimum) throw new ArgumentException($"--devices {text}: data-parallel training needs at least {minimum} devices (for one, use --device)");
        if (list.Any(d => d.Type is not (DeviceType.Cpu or DeviceType.Cuda)) || list.Any(d => d.Type != list[0].Type))
            throw new ArgumentException($"--devices {text}: all GPUs (or all cpu, for testing)");
        if (list[0].Type == DeviceType.Cuda)
        {
            if (list.Distinct().Count() != list.Count) throw new ArgumentException($"--devices {text}: a GPU is listed twice");
            int n = CudaDriver.DeviceCount(out string? why);
            foreach (var d in list)
                if (d.Index >= n) throw new ArgumentException($"--devices {text}: there is no {d} (this machine has {n} GPU(s){(why is null ? "" : $": {why}")})");
        }
        return list;
    }
}
