using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Detection.Models;

/// <summary>
/// The parameters a model expects, by their reference implementation's state_dict names, in declaration
/// order. Modules register their names and shapes when built; <see cref="Check"/> validates a weight file
/// against them with one error listing every missing, unexpected or mis-shaped tensor.
/// </summary>
public sealed class ParameterTable
{
    private readonly OrderedDictionary<string, Shape> _expected = new(StringComparer.Ordinal);
    private readonly HashSet<string> _batchNorms = new(StringComparer.Ordinal);
    private readonly List<Conv> _layers = [];

    public IReadOnlyDictionary<string, Shape> Expected => _expected;

    /// <summary>The convolutions the model's modules declared, in order; their loaded tensors are what training updates.</summary>
    public IReadOnlyList<Conv> Layers => _layers;

    internal void AddLayer(Conv conv) => _layers.Add(conv);

    public void Add(string name, params int[] shape)
    {
        if (!_expected.TryAdd(name, new Shape(shape))) throw new InvalidOperationException($"parameter '{name}' declared twice");
    }

    /// <summary>Declares a batch norm's four tensors; its num_batches_tracked, if a file has one, is accepted and ignored.</summary>
    public void AddBatchNorm(string prefix, int channels)
    {
        foreach (string p in new[] { "weight", "bias", "running_mean", "running_var" }) Add($"{prefix}.{p}", channels);
        _batchNorms.Add(prefix);
    }

    /// <summary>Keys of a training checkpoint's optimiser state; a weight file may carry them and they are ignored here.</summary>
    public const string TrainingStatePrefix = "osprey.optimizer.";

    /// <summary>Throws <see cref="WeightFileException"/> unless the state dict holds exactly the expected tensors.</summary>
    public void Check(StateDict weights, string source)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var expected = new Dictionary<string, Shape>(_expected, StringComparer.Ordinal);
        foreach (string key in weights.Keys)
        {
            const string Tracked = ".num_batches_tracked";
            if (key.EndsWith(Tracked, StringComparison.Ordinal) && _batchNorms.Contains(key[..^Tracked.Length]))
                expected[key] = weights[key].Shape;
            if (key.StartsWith(TrainingStatePrefix, StringComparison.Ordinal)) expected[key] = weights[key].Shape;
        }
        weights.Validate(expected, source);
    }
}

/// <summary>
/// A convolution as a model declares it: torch names for its weight (and bias), optionally followed by a batch norm
/// (torchvision's FrozenBatchNorm2d, eps 1e-5) that is folded into the weights at load, and a fused activation.
/// </summary>
public sealed class Conv : IDisposable
{
    private readonly string _name;
    private readonly string? _bn;
    private readonly bool _bias;
    private Tensor? _w, _b;

    public Conv(ParameterTable table, string name, int inChannels, int outChannels, int kernel, int stride = 1, int padding = 0,
        int dilation = 1, int groups = 1, bool bias = true, string? batchNorm = null, UnaryOp activation = default)
    {
        ArgumentNullException.ThrowIfNull(table);
        _name = name;
        _bn = batchNorm;
        _bias = bias;
        OutChannels = outChannels;
        Geometry = Conv2dParams.Square(stride, padding, dilation, groups);
        Activation = activation;
        table.Add($"{name}.weight", outChannels, inChannels / groups, kernel, kernel);
        if (bias) table.Add($"{name}.bias", outChannels);
        if (batchNorm is not null) table.AddBatchNorm(batchNorm, outChannels);
        table.AddLayer(this);
    }

    /// <summary>The torch name of the convolution (its weight is Name + ".weight").</summary>
    public string Name => _name;

    /// <summary>The frozen batch norm folded into this convolution, if any.</summary>
    public string? BatchNorm => _bn;

    /// <summary>The loaded weight (batch norm folded in), the very tensor the forward uses, so autograd can watch it; null before loading.</summary>
    public Tensor? Weight => _w;

    /// <summary>The loaded bias [O] (batch norm folded in; zeros for a convolution without bias and batch norm).</summary>
    public Tensor? Bias => _b;

    public int OutChannels { get; }
    public Conv2dParams Geometry { get; }
    public UnaryOp Activation { get; }

    /// <summary>
    /// Takes the weights from a checked state dict onto a device, laid out for inputs in <paramref name="format"/>:
    /// batch norm folded in float32, then cast once to <paramref name="dtype"/> (float32 or float16; the bias too).
    /// </summary>
    public void Load(StateDict weights, Device device, MemoryFormat format = MemoryFormat.Contiguous, DType dtype = DType.Float32)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var w = Floats(weights[$"{_name}.weight"]);
        var b = _bias ? Floats(weights[$"{_name}.bias"]) : new float[OutChannels];
        if (_bn is not null)
        {
            var g = Floats(weights[$"{_bn}.weight"]);
            var beta = Floats(weights[$"{_bn}.bias"]);
            var mean = Floats(weights[$"{_bn}.running_mean"]);
            var var = Floats(weights[$"{_bn}.running_var"]);
            int per = w.Length / OutChannels;
            for (int o = 0; o < OutChannels; o++)
            {
                // FrozenBatchNorm2d: scale = w * rsqrt(var + eps), shift = b - mean * scale
                float scale = g[o] * (1f / MathF.Sqrt(var[o] + 1e-5f));
                for (int i = 0; i < per; i++) w[o * per + i] *= scale;
                b[o] = (b[o] - mean[o]) * scale + beta[o];
            }
        }
        Dispose();
        var shape = weights[$"{_name}.weight"].Shape;
        using (var dense = Upload(w, shape, device, dtype)) _w = Op.Contiguous(dense, format);
        _b = Upload(b, new Shape(OutChannels), device, dtype);
    }

    private static float[] Floats(Tensor t)
    {
        if (t.DType == DType.Float32) return t.ToArray<float>();
        using var c = Op.Cast(t, DType.Float32);
        return c.ToArray<float>();
    }

    private static Tensor Upload(float[] data, Shape shape, Device device, DType dtype)
    {
        using var host = Tensor.FromSpan<float>(data, shape);
        if (dtype == DType.Float32) return Op.To(host, device);
        using var onDevice = Op.To(host, device);
        return Op.Cast(onDevice, dtype);
    }

    /// <summary>act(conv(x) + bias + residual), the activation being this layer's unless overridden.</summary>
    public Tensor Forward(Tensor x, Tensor? residual = null, UnaryOp? activation = null)
    {
        if (_w is null) throw new InvalidOperationException($"{_name}: weights not loaded");
        return Op.Conv2d(x, _w, Geometry, new Epilogue(_b, residual, activation ?? Activation));
    }

    public void Dispose()
    {
        _w?.Dispose();
        _b?.Dispose();
        _w = _b = null;
    }
}
