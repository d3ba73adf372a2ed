using Osprey.Core.Tensors;

namespace Osprey.Core.Autograd;

/// <summary>
/// Records the differentiable ops run on this thread while it is the innermost active tape, then
/// computes gradients in reverse order. Nothing is recorded without a tape (inference pays one
/// thread-static read per op) and nothing is recorded for ops whose inputs do not depend on a watched
/// <see cref="Parameter"/> or tensor.
/// <code>
/// using var tape = new GradTape(parameters);
/// using var loss = Model(x);            // recorded
/// tape.Backward(loss);                  // parameter.Grad += dloss/dparameter; saved tensors freed
/// </code>
/// The tape keeps its own references (untracked by any <see cref="TensorScope"/>) to the tensors a backward
/// function needs, so forward code may dispose its temporaries as usual; they are released as soon as
/// their node has run in <see cref="Backward(Tensor)"/>, or when the tape is disposed. One backward per tape.
/// Forward ops must not write into a saved tensor afterwards (ops never do; <c>Op.CopyInto</c> could).
/// </summary>
public sealed class GradTape : IDisposable
{
    [ThreadStatic] private static GradTape? t_current;

    private readonly GradTape? _outer;
    private readonly List<GradNode> _nodes = [];
    private readonly HashSet<Tensor> _tracked = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<Tensor, Parameter> _parameters = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<Tensor, Tensor> _inputGrads = new(ReferenceEqualityComparer.Instance);
    private bool _busy, _done, _disposed;
    private int _paused;

    /// <summary>Starts recording on this thread, watching the given parameters.</summary>
    public GradTape(IEnumerable<Parameter>? parameters = null)
    {
        if (parameters is not null) foreach (var p in parameters) Watch(p);
        _outer = t_current;
        t_current = this;
    }

    /// <summary>The tape that records ops now on this thread, or null (no tape, paused, busy or finished).</summary>
    internal static GradTape? Active
    {
        get
        {
            var t = t_current;
            return t is null || t._busy || t._done || t._paused > 0 ? null : t;
        }
    }

    /// <summary>Ops recorded so far (for tests and diagnostics).</summary>
    public int NodeCount => _nodes.Count;

    /// <summary>Tensors the tape holds for backward, not yet released.</summary>
    public int SavedTensorCount
    {
        get
        {
            int n = 0;
            foreach (var node in _nodes) n += node.SavedCount;
            return n;
        }
    }

    /// <summary>Makes gradients flow to a parameter: its <see cref="Parameter.Grad"/> accumulates on <see cref="Backward(Tensor)"/>.</summary>
    public void Watch(Parameter parameter)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        ThrowIfFinished();
        if (!parameter.Value.DType.IsFloating())
            throw new OpArgumentException($"autograd: parameter '{parameter.Name}' is {parameter.Value.DType.Name()}, gradients need a floating dtype");
        _parameters[parameter.Value] = parameter;
        _tracked.Add(parameter.Value);
    }

    /// <summary>Makes gradients flow to a plain tensor (an input); read it with <see cref="TakeGrad"/> after backward.</summary>
    public void Watch(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ThrowIfFinished();
        _tracked.Add(input);
    }

    /// <summary>Whether ops on this tensor are recorded (it is watched or computed from a watched tensor).</summary>
    public bool RequiresGrad(Tensor t) => _tracked.Contains(t);

    /// <summary>Stops recording on this thread until the returned value is disposed (optimiser steps, metrics).</summary>
    public static NoGradScope NoGrad()
    {
        var t = t_current;
        if (t is not null) t._paused++;
        return new NoGradScope(t);
    }

    /// <summary>Records one op: called by <c>Op</c> after computing <paramref name="output"/>; ignored unless an input is tracked.</summary>
    internal void Record(GradNode node, Tensor output, params Tensor?[] inputs)
    {
        bool any = false;
        var needs = new bool[inputs.Length];
        for (int i = 0; i < inputs.Length; i++)
            any |= needs[i] = inputs[i] is { } t && _tracked.Contains(t);
        if (!any || !output.DType.IsFloating()) return;
        _busy = true;
        try
        {
            using (TensorScope.Untracked())
            {
                node.Inputs = inputs;
                node.NeedsGrad = needs;
                node.OutputShape = output.Shape;
                node.Output = output;
                node.Save();
            }
        }
        finally
        {
            _busy = false;
        }
        _nodes.Add(node);
        _tracked.Add(output);
    }

    /// <summary>Back-propagates from a scalar loss (its gradient is 1).</summary>
    public void Backward(Tensor loss)
    {
        ArgumentNullException.ThrowIfNull(loss);
        if (loss.Numel != 1) throw new OpArgumentException($"backward: loss must have one element, got {loss.Shape}; pass the output's gradient instead");
        Tensor seed;
        using (TensorScope.Untracked()) seed = Tensor.Full(loss.Shape, 1.0, loss.DType, loss.Device);
        using (seed) Backward([(loss, seed)]);
    }

    /// <summary>Back-propagates a given gradient of one output (e.g. a loss's gradient computed elsewhere).</summary>
    public void Backward(Tensor output, Tensor gradOutput) => Backward([(output, gradOutput)]);

    /// <summary>
    /// Back-propagates several (output, gradient) pairs together, runs every recorded node once in reverse order,
    /// adds the results to the watched parameters' <see cref="Parameter.Grad"/>, and frees every saved tensor.
    /// </summary>
    public void Backward(IReadOnlyList<(Tensor Output, Tensor Grad)> roots)
    {
        ArgumentNullException.ThrowIfNull(roots);
        ThrowIfFinished();
        foreach (var (output, grad) in roots)
        {
            if (!_tracked.Contains(output))
                throw new OpArgumentException($"backward: output {output.Shape} does not depend on any watched parameter or tensor");
            if (grad.Shape != output.Shape || grad.DType != output.DType)
                throw new OpArgumentException($"backward: gradient {grad.Shape} {grad.DType.Name()} does not match output {output.Shape} {output.DType.Name()}");
        }
        _done = true;
        var grads = new Dictionary<Tensor, Tensor>(ReferenceEqualityComparer.Instance);
        using var suspend = TensorScope.Untracked();
        try
        {
            foreach (var (output, grad) in roots) Accumulate(grads, output, grad.Share());
            for (int i = _nodes.Count - 1; i >= 0; i--)
            {
                var node = _nodes[i];
                if (grads.Remove(node.Output, out var g))
                {
                    using (g)
                    {
                        var inputGrads = new Tensor?[node.Inputs.Length];
                        node.Backward(g, inputGrads);
                        for (int j = 0; j < inputGrads.Length; j++)
                        {
                            if (inputGrads[j] is not { } gi) continue;
                            if (!node.NeedsGrad[j]) { gi.Dispose(); continue; }
                            if (gi.Shape != node.Inputs[j]!.Shape)
                                throw new InvalidOperationException($"autograd: {node.Name} produced gradient {gi.Shape} for input {j} of shape {node.Inputs[j]!.Shape}");
                            Accumulate(grads, node.Inputs[j]!, gi);
                        }
                    }
                }
                node.Release();
            }
            foreach (var (key, g) in grads)
            {
                if (_parameters.TryGetValue(key, out var p)) p.Accumulate(g);
                else if (_tracked.Contains(key) && !_inputGrads.ContainsKey(key)) _inputGrads[key] = g;
                else g.Dispose();
            }
            grads.Clear();
        }
        finally
        {
            foreach (var g in grads.Values) g.Dispose();
            ReleaseNodes();
        }
    }

    /// <summary>The gradient of a watched input after <see cref="Backward(Tensor)"/> (the caller owns it), or null if none reached it.</summary>
    public Tensor? TakeGrad(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return _inputGrads.Remove(input, out var g) ? g : null;
    }

    private static void Accumulate(Dictionary<Tensor, Tensor> grads, Tensor key, Tensor g)
    {
        if (grads.TryGetValue(key, out var old))
        {
            grads[key] = Ops.Op.Add(old, g);
            old.Dispose();
            g.Dispose();
        }
        else grads[key] = g;
    }

    private void ReleaseNodes()
    {
        foreach (var node in _nodes) node.Release();
        _nodes.Clear();
        _tracked.Clear();
    }

    private void ThrowIfFinished()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_done) throw new InvalidOperationException("autograd: this tape has already run backward; start a new GradTape per step");
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (t_current == this) t_current = _outer;
        ReleaseNodes();
        foreach (var g in _inputGrads.Values) g.Dispose();
        _inputGrads.Clear();
    }

    /// <summary>Ends a <see cref="NoGrad"/> region.</summary>
    public readonly struct NoGradScope : IDisposable
    {
        private readonly GradTape? _tape;

        internal NoGradScope(GradTape? tape) => _tape = tape;

        public void Dispose()
        {
            if (_tape is not null) _tape._paused--;
        }
    }
}
