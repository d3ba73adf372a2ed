using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Detection.Models;

/// <summary>
/// torchvision's FeaturePyramidNetwork over C3..C5 with LastLevelP6P7(256, 256): lateral 1x1 convs
/// (inner_blocks.i.0), top-down nearest upsampling to the lateral's size, 3x3 output convs (layer_blocks.i.0);
/// P6 = 3x3 stride-2 conv of P5 (in = out channels, so torchvision v1 uses P5, not C5), P7 = same on relu(P6).
/// </summary>
public sealed class Fpn : IDisposable
{
    private readonly Conv[] _inner, _layer;
    private readonly Conv _p6, _p7;

    public Fpn(ParameterTable table, string prefix, int[] inChannels, int channels = 256)
    {
        ArgumentNullException.ThrowIfNull(inChannels);
        _inner = new Conv[inChannels.Length];
        _layer = new Conv[inChannels.Length];
        for (int i = 0; i < inChannels.Length; i++)
        {
            _inner[i] = new Conv(table, $"{prefix}.inner_blocks.{i}.0", inChannels[i], channels, 1);
            _layer[i] = new Conv(table, $"{prefix}.layer_blocks.{i}.0", channels, channels, 3, 1, 1);
        }
        _p6 = new Conv(table, $"{prefix}.extra_blocks.p6", channels, channels, 3, 2, 1);
        _p7 = new Conv(table, $"{prefix}.extra_blocks.p7", channels, channels, 3, 2, 1);
    }

    public void Load(StateDict weights, Device device, MemoryFormat format, DType dtype)
    {
        foreach (var c in _inner.Concat(_layer).Append(_p6).Append(_p7)) c.Load(weights, device, format, dtype);
    }

    /// <summary>P3..P7 from C3..C5.</summary>
    public Tensor[] Forward(IReadOnlyList<Tensor> c)
    {
        ArgumentNullException.ThrowIfNull(c);
        int n = _inner.Length;
        if (c.Count != n) throw new ArgumentException($"fpn: {c.Count} inputs, built for {n}");
        var p = new Tensor[n + 2];
        var last = _inner[n - 1].Forward(c[n - 1]);
        p[n - 1] = _layer[n - 1].Forward(last);
        for (int i = n - 2; i >= 0; i--)
        {
            Tensor up;
            using (last) up = Op.Resize(last, c[i].Shape[2], c[i].Shape[3], ResizeMode.Nearest);
            using (up) last = _inner[i].Forward(c[i], up);   // lateral + top-down, the add fused into the 1x1 conv
            p[i] = _layer[i].Forward(last);
        }
        last.Dispose();
        p[n] = _p6.Forward(p[n - 1]);
        using (var r = Op.Relu(p[n])) p[n + 1] = _p7.Forward(r);
        return p;
    }

    public void Dispose()
    {
        foreach (var c in _inner.Concat(_layer).Append(_p6).Append(_p7)) c.Dispose();
    }
}
