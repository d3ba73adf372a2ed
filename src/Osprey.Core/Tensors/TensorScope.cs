namespace Osprey.Core.Tensors;

/// <summary>
/// Disposes, at its end, every tensor created on this thread while it was the innermost scope,
/// except those passed to <see cref="Keep"/>. Lets model code create temporaries freely:
/// <c>using (var scope = new TensorScope()) { ...; return scope.Keep(result); }</c>.
/// </summary>
public sealed class TensorScope : IDisposable
{
    [ThreadStatic] private static TensorScope? t_current;
    [ThreadStatic] private static int t_suspended;

    private readonly TensorScope? _outer;
    private readonly List<Tensor> _tensors = [];
    private bool _disposed;

    public TensorScope()
    {
        _outer = t_current;
        t_current = this;
    }

    internal static void Track(Tensor t)
    {
        if (t_suspended == 0) t_current?._tensors.Add(t);
    }

    /// <summary>While the returned value is alive, new tensors join no scope (autograd's saved tensors and gradients outlive the caller's scopes).</summary>
    internal static Suspension Suspend()
    {
        t_suspended++;
        return default;
    }

    internal readonly struct Suspension : IDisposable
    {
        public void Dispose() => t_suspended--;
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
