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
    private Tensor? _home;

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

    /// <summary>The tensor backward writes the gradient into (see <see cref="UseGradBuffer"/>), or null.</summary>
    public Tensor? GradBuffer => _home;

    /// <summary>
    /// Makes backward write this parameter's gradient into <paramref name="home"/> (contiguous, the value's shape, dtype and
    /// device; typically a view of one flat buffer holding every parameter's gradient, which a data-parallel all-reduce and
    /// a multi-tensor optimiser then take whole) instead of a fresh tensor per backward: the first gradient after
    /// <see cref="ZeroGrad"/> is copied in, later ones added in place, and <see cref="Grad"/> is a view of it. ZeroGrad then
    /// only forgets the gradient (no memset: the next backward overwrites it). Null: fresh tensors again. The parameter keeps
    /// its own reference to <paramref name="home"/>.
    /// </summary>
    public void UseGradBuffer(Tensor? home)
    {
        if (home is not null)
        {
            if (home.Shape != Value.Shape || home.DType != Value.DType || home.Device != Value.Device || !home.IsContiguous())
                throw new ArgumentException($"parameter {Name}: gradient buffer {home.Shape} {home.DType.Name()} on {home.Device} (contiguous: {home.IsContiguous()}) does not fit the value {Value.Shape} {Value.DType.Name()} on {Value.Device}");
        }
        ZeroGrad();
        _home?.Dispose();
        _home = home?.ShareView();
    }

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
            if (_home is not null && g.DType == _home.DType && g.Device == _home.Device)
            {
                if (Grad is null)
                {
                    g.Backend.Copy(g, _home);
                    Grad = _home.ShareView();
                    return;
                }
                using var added = Ops.Op.Add(Grad, g);
                added.Backend.Copy(added, Grad);
                return;
            }
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
        _home?.Dispose();
        _home = null;
        if (_ownsValue) Value.Dispose();
    }

    public override string ToString() => $"Parameter({Name}, {Value.Shape})";
}
