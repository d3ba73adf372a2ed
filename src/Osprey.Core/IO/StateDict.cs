using Osprey.Core.Tensors;

namespace Osprey.Core.IO;

/// <summary>
/// Named tensors, as a model's parameters are stored (torch's state_dict). Owns its tensors: disposing it
/// disposes them. Entries keep the order they were read or added in.
/// </summary>
public sealed class StateDict : IDisposable
{
    private readonly OrderedDictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);

    public int Count => _tensors.Count;
    public IEnumerable<string> Keys => _tensors.Keys;
    public IEnumerable<KeyValuePair<string, Tensor>> Entries => _tensors;

    /// <summary>Free-form string metadata (safetensors' __metadata__).</summary>
    public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);

    public Tensor this[string name] =>
        _tensors.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"no tensor named '{name}' in the weights");

    public bool TryGet(string name, out Tensor tensor) => _tensors.TryGetValue(name, out tensor!);

    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>Adds a tensor; the state dict takes ownership.</summary>
    public void Add(string name, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (!_tensors.TryAdd(name, tensor)) throw new ArgumentException($"duplicate tensor name '{name}'", nameof(name));
    }

    /// <summary>
    /// Checks this state dict against what a model expects (name to shape) and throws one error listing
    /// every missing key, unexpected key and shape mismatch.
    /// </summary>
    public void Validate(IReadOnlyDictionary<string, Shape> expected, string source)
    {
        ArgumentNullException.ThrowIfNull(expected);
        var missing = expected.Keys.Where(k => !_tensors.ContainsKey(k)).ToList();
        var unexpected = _tensors.Keys.Where(k => !expected.ContainsKey(k)).ToList();
        var mismatched = expected.Where(e => _tensors.TryGetValue(e.Key, out var t) && t.Shape != e.Value)
            .Select(e => $"{e.Key}: file has {_tensors[e.Key].Shape}, model needs {e.Value}").ToList();
        if (missing.Count + unexpected.Count + mismatched.Count == 0) return;
        var lines = new List<string> { $"weights in {source} do not fit the model:" };
        if (missing.Count > 0) lines.Add($"  missing ({missing.Count}): {string.Join(", ", missing)}");
        if (unexpected.Count > 0) lines.Add($"  unexpected ({unexpected.Count}): {string.Join(", ", unexpected)}");
        if (mismatched.Count > 0) lines.Add($"  shape mismatch ({mismatched.Count}):\n    {string.Join("\n    ", mismatched)}");
        throw new WeightFileException(string.Join('\n', lines));
    }

    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
    }
}

/// <summary>A weight file is unreadable, malformed, or does not fit the model.</summary>
public sealed class WeightFileException : OspreyException
{
    public WeightFileException() { }
    public WeightFileException(string message) : base(message) { }
    public WeightFileException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Loads weights from a safetensors file or a PyTorch checkpoint, chosen by the file's first bytes.</summary>
public static class WeightFile
{
    public static StateDict Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new WeightFileException($"{path}: file not found");
        Span<byte> magic = stackalloc byte[4];
        using (var f = File.OpenRead(path))
        {
            if (f.ReadAtLeast(magic, 4, throwOnEndOfStream: false) < 4) throw new WeightFileException($"{path}: too short to be a weight file ({f.Length} bytes)");
        }
        return magic[0] == (byte)'P' && magic[1] == (byte)'K'
            ? TorchCheckpoint.LoadStateDict(path)
            : SafeTensors.Load(path);
    }
}
