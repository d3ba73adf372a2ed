using Osprey.Core.Tensors;

namespace Osprey.Core.Autograd;

/// <summary>
/// A tensor that gradients flow to, with its gradient accumulator. <see cref="Grad"/> is null until a
/// <see cref="GradTape.Backward(Tensor)"/> reaches the parameter; later backward passes add to it until
/// <see cref="ZeroGrad"/>. The tape identifies a parameter by its <see cref="Value"/> object, so model code
/// must use that very tensor (not a <c>Share()</c> of it) in its ops.
/// </summary>
public sealed class Parameter : IDisposable
{
    private readonly bool _ownsValue;

    /// <param name="value">The tensor (floating dtype).</param>
    /// <param name="name">A name for messages and checkpoints (torch's state_dict key, say).</param>
    /// <param name="ownsValue">Whether disposing the parameter disposes <paramref name="value"/> (false for a model's own tensors).</param>
    public Parameter(Tensor value, string name = "", bool ownsValue = true)
    {
        ArgumentNullException.ThrowIfNull(value);
        Value = value;
        Name = name;
        _ownsValue = ownsValue;
    }

    public Tensor Value { get; }
    public string Name { get; }

    /// <summary>The accumulated gradient (shape and dtype of <see cref="Value"/>, contiguous), or null.</summary>
    public Tensor? Grad { get; private set; }

    public void ZeroGrad()
    {
        Grad?.Dispose();
        Grad = null;
    }

    /// <summary>Adds a gradient; takes ownership of <paramref name="g"/>.</summary>
    internal void Accumulate(Tensor g)
    {
        using (g)
        {
            if (Grad is null)
            {
                // a private copy: gradients from the tape may share storage with each other
                var own = Tensor.Empty(g.Shape, g.DType, g.Device);
                g.Backend.Copy(g, own);
                Grad = own;
                return;
            }
            var sum = Ops.Op.Add(Grad, g);
            Grad.Dispose();
            Grad = sum;
        }
    }

    public void Dispose()
    {
        ZeroGrad();
        if (_ownsValue) Value.Dispose();
    }

    public override string ToString() => $"Parameter({Name}, {Value.Shape})";
}
