using Osprey.Core.Autograd;
using Osprey.Core.Tensors;

namespace Osprey.Detection.Training.Loop;

/// <summary>
/// Every trained tensor's gradient as a view of one flat buffer per dtype, in parameter order (<see cref="Parameter.UseGradBuffer"/>):
/// backward writes the gradients in place (no allocation per parameter and step, nothing to zero), the data-parallel
/// all-reduce takes each buffer whole (<see cref="GradientBuckets"/>, no packing), and the multi-tensor optimiser finds the
/// gradients at fixed addresses (its pointer table is uploaded once).
/// </summary>
internal sealed class FlatGradients : IDisposable
{
    private readonly List<Tensor> _flat = [];

    public FlatGradients(IReadOnlyList<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var dtypes = new List<DType>(2);
        foreach (var p in parameters) if (!dtypes.Contains(p.Value.DType)) dtypes.Add(p.Value.DType);
        using var untracked = TensorScope.Untracked();
        foreach (var dtype in dtypes)
        {
            long total = 0;
            foreach (var p in parameters) if (p.Value.DType == dtype) total += p.Value.Numel;
            if (total == 0) continue;
            var flat = Tensor.Empty(new Shape(checked((int)total)), dtype, parameters[0].Value.Device);
            _flat.Add(flat);
            long at = 0;
            foreach (var p in parameters)
            {
                if (p.Value.DType != dtype || p.Value.Numel == 0) continue;
                using (var slice = flat.Slice(0, checked((int)at), checked((int)(at + p.Value.Numel))))
                using (var view = slice.Reshape(p.Value.Shape.ToArray()))
                    p.UseGradBuffer(view);
                at += p.Value.Numel;
            }
        }
    }

    /// <summary>The flat buffers (one per gradient dtype, in order of first appearance).</summary>
    public IReadOnlyList<Tensor> Buffers => _flat;

    public void Dispose()
    {
        foreach (var f in _flat) f.Dispose();
        _flat.Clear();
    }
}
