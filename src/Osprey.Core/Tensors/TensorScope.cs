namespace Osprey.Core.Tensors;

/// <summary>
/// Disposes, at its end, every tensor created on this thread while it was the innermost scope,
/// except those passed to <see cref="Keep"/>. Lets model code create temporaries freely:
/// <c>using (var scope = new TensorScope()) { ...; return scope.Keep(result); }</c>.
/// </summary>
public sealed class TensorScope : IDisposable
{
    [ThreadStatic] private static TensorScope? t_current;

    private readonly TensorScope? _outer;
    private readonly List<Tensor> _tensors = [];
    private readonly bool _untracked;
    private bool _disposed;

    public TensorScope() : this(false) { }

    private TensorScope(bool untracked)
    {
        _untracked = untracked;
        _outer = t_current;
        t_current = this;
    }

    /// <summary>Until disposed, tensors created on this thread belong to the caller and no enclosing scope disposes them
    /// (long-lived state such as optimiser buffers created while a caller's scope is open).</summary>
    public static TensorScope Untracked() => new(untracked: true);

    internal static void Track(Tensor t)
    {
        if (t_current is { _untracked: false } s) s._tensors.Add(t);
    }

    /// <summary>Hands a tensor to the enclosing scope (or to the caller if none) instead of disposing it.</summary>
    public Tensor Keep(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        int i = _tensors.LastIndexOf(t);
        if (i >= 0) _tensors.RemoveAt(i);
        _outer?._tensors.Add(t);
        return t;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (t_current == this) t_current = _outer;
        foreach (var t in _tensors) t.Dispose();
        _tensors.Clear();
    }
}
