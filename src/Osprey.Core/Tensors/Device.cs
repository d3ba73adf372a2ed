namespace Osprey.Core.Tensors;

public enum DeviceType
{
    Cpu,
    Cuda,
    /// <summary>Shapes and dtypes only, no data: the engine's tracing backend records op calls made on it.</summary>
    Meta,
}

/// <summary>Where a tensor's memory lives: the CPU, or CUDA device N.</summary>
public readonly record struct Device(DeviceType Type, int Index = 0)
{
    public static readonly Device Cpu = new(DeviceType.Cpu);

    public static Device Cuda(int index = 0) => new(DeviceType.Cuda, index);

    /// <summary>Parses "cpu", "cuda" or "cuda:N".</summary>
    public static Device Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string t = text.Trim().ToLowerInvariant();
        if (t == "cpu") return Cpu;
        if (t == "cuda" || t == "gpu") return Cuda(0);
        if (t.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(t.AsSpan(5), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int i))
            return Cuda(i);
        throw new FormatException($"unknown device '{text}': expected cpu, cuda or cuda:N");
    }

    public static Device Meta(int index) => new(DeviceType.Meta, index);

    public override string ToString() => Type switch
    {
        DeviceType.Cpu => "cpu",
        DeviceType.Meta => $"meta:{Index}",
        _ => $"cuda:{Index}",
    };
}

/// <summary>How a 4-D tensor's logical N,C,H,W dimensions are laid out in memory.</summary>
public enum MemoryFormat
{
    /// <summary>Row-major over the logical dimensions (NCHW for images).</summary>
    Contiguous,
    /// <summary>NHWC in memory while the logical shape stays N,C,H,W (PyTorch's channels_last).</summary>
    ChannelsLast,
}
