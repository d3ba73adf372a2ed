using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Detection.Training.Optim;

/// <summary>A parameter and its gradient, on any device. The optimiser updates <see cref="Param"/> in place.</summary>
public readonly record struct ParamGrad(Tensor Param, Tensor Grad);

/// <summary>
/// The common part of the optimisers: per-parameter state kept in float32 on the parameter's device, FP32 master weights for
/// float16/bfloat16 parameters (the update runs on the float32 master; the parameter receives the master rounded to its dtype),
/// and in-place write-back through <see cref="Op.CopyInto"/>. Parameters are identified by position: every
/// <see cref="Step"/> must pass the same parameters in the same order.
/// </summary>
public abstract partial class Optimizer : IDisposable
{
    private readonly List<ParamState> _state = [];
    private bool _disposed;

    /// <summary>The learning rate of the next step (a scheduler sets it).</summary>
    public double LearningRate { get; set; }

    /// <summary>Steps taken.</summary>
    public long Steps { get; private set; }

    /// <summary>The state to checkpoint: (parameter index, buffer name, float32 buffer) for every buffer created so far.
    /// The tensors are the optimiser's own (do not dispose them).</summary>
    public IEnumerable<(int Index, string Name, Tensor Value)> StateBuffers()
    {
        for (int i = 0; i < _state.Count; i++)
            foreach (var (name, t) in _state[i].Buffers) yield return (i, name, t);
    }

    /// <summary>Restores a checkpointed state: the step count and buffers (copied), for <paramref name="parameters"/> in the
    /// order later steps will pass them. Only on a fresh optimiser. <paramref name="masters"/> (optional, one per parameter,
    /// null entries allowed): the FP32 master values of 16-bit parameters (copied; without one a master is the parameter cast
    /// to float32, which keeps only what float16 rounding left).</summary>
    public void LoadState(IReadOnlyList<Tensor> parameters, long steps, IEnumerable<(int Index, string Name, Tensor Value)> buffers,
        IReadOnlyList<Tensor?>? masters = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(buffers);
        if (Steps != 0 || _state.Count != 0) throw new InvalidOperationException($"{Name}: state can only be loaded into a fresh optimizer");
        if (steps < 0) throw new ArgumentOutOfRangeException(nameof(steps), $"{Name}: steps {steps} must be >= 0");
        if (masters is not null && masters.Count != parameters.Count)
            throw new ArgumentException($"{Name}: {masters.Count} master weights for {parameters.Count} parameters");
        using (TensorScope.Untracked())
        {
            for (int i = 0; i < parameters.Count; i++)
            {
                var m = masters?[i];
                if (m is not null && m.Shape != parameters[i].Shape)
                    throw new ArgumentException($"{Name}: master weight {i} is {m.Shape}, the parameter {parameters[i].Shape}");
                _state.Add(new ParamState(parameters[i], m));
            }
            foreach (var (i, name, value) in buffers)
            {
                if (i < 0 || i >= _state.Count) throw new ArgumentException($"{Name}: state for parameter {i}, but there are {_state.Count}");
                if (!AcceptsBuffer(name)) throw new ArgumentException($"{Name}: state '{name}' of parameter {i} is not one of this optimizer's buffers (saved by another optimizer?)");
                if (value.Shape != _state[i].Shape) throw new ArgumentException($"{Name}: state '{name}' of parameter {i} is {value.Shape}, the parameter {_state[i].Shape}");
                _state[i].SetBuffer(name, value);
            }
        }
        Steps = steps;
    }

    protected Optimizer(double learningRate)
    {
        if (!(learningRate >= 0)) throw new ArgumentOutOfRangeException(nameof(learningRate), $"optimizer: learning rate {learningRate} must be >= 0");
        LearningRate = learningRate;
    }

    /// <summary>Applies one update to every parameter from its gradient.</summary>
    public void Step(IReadOnlyList<ParamGrad> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Steps > 0 && parameters.Count != _state.Count)
            throw new ArgumentException($"{Name}: step with {parameters.Count} parameters, earlier steps had {_state.Count}");
        for (int i = 0; i < parameters.Count; i++) CheckPair(parameters[i], i);
        DetachMultiTensor();
        Steps++;
        for (int i = 0; i < parameters.Count; i++)
        {
            var (p, g) = parameters[i];
            if (_state.Count <= i)
                using (TensorScope.Untracked()) _state.Add(new ParamState(p, null));
            var s = _state[i];
            using var scope = new TensorScope();
            Tensor master = s.Master ?? p;
            Tensor grad = g.DType == DType.Float32 ? g : Op.Cast(g, DType.Float32);
            Op.CopyInto(Update(s, master, grad, i), master);
            if (s.Master is not null) Op.CopyInto(s.Master, p);
        }
    }

    /// <summary>Returns the new float32 value of <paramref name="param"/> (float32) given its float32 gradient; updates
    /// <paramref name="state"/>'s buffers in place (<see cref="Op.CopyInto"/>). Runs inside a <see cref="TensorScope"/>.</summary>
    /// <summary>The FP32 master copy of parameter <paramref name="index"/> (16-bit parameters only; null for float32 ones or
    /// before the first step). The optimiser's own tensor: do not dispose or modify it.</summary>
    public Tensor? Master(int index) => index >= 0 && index < _state.Count ? _state[index].Master : null;

    protected abstract Tensor Update(ParamState state, Tensor param, Tensor grad, int index);

    protected abstract string Name { get; }

    /// <summary>Whether <paramref name="name"/> is one of this optimizer's state buffers (checked when a state is loaded).</summary>
    protected virtual bool AcceptsBuffer(string name) => true;

    private void CheckPair(ParamGrad pg, int i)
    {
        var (p, g) = pg;
        if (p is null || g is null) throw new ArgumentException($"{Name}: parameter {i} or its gradient is null");
        if (p.Shape != g.Shape) throw new ArgumentException($"{Name}: parameter {i} has shape {p.Shape} but its gradient {g.Shape}");
        if (p.Device != g.Device) throw new ArgumentException($"{Name}: parameter {i} is on {p.Device} but its gradient on {g.Device}");
        if (!p.DType.IsFloating() || !g.DType.IsFloating())
            throw new ArgumentException($"{Name}: parameter {i} ({p.DType.Name()}) and gradient ({g.DType.Name()}) must be floating point");
        if (i < _state.Count && _state[i].Shape != p.Shape)
            throw new ArgumentException($"{Name}: parameter {i} has shape {p.Shape}, earlier steps had {_state[i].Shape}");
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        DisposeMultiTensor();
        foreach (var s in _state) s.Dispose();
        _state.Clear();
        GC.SuppressFinalize(this);
    }

    /// <summary>Per-parameter state: the FP32 master copy (16-bit parameters only) and named float32 buffers.</summary>
    protected sealed class ParamState : IDisposable
    {
        private readonly Dictionary<string, Tensor> _buffers = [];

        public Shape Shape { get; }
        public Tensor? Master { get; private set; }
        public Device Device { get; }

        public ParamState(Tensor p, Tensor? master)
        {
            Shape = p.Shape;
            Device = p.Device;
            if (p.DType == DType.Float32) return;
            if (master is null) { Master = Op.Cast(p, DType.Float32); return; }
            var m = Tensor.Empty(p.Shape, DType.Float32, p.Device);
            try
            {
                using var onDevice = Op.To(master, p.Device);
                Op.CopyInto(onDevice, m);
            }
            catch
            {
                m.Dispose();
                throw;
            }
            Master = m;
        }

        /// <summary>A float32 buffer of the parameter's shape and device, zero when first asked for; <paramref name="fresh"/>
        /// says whether it was just created.</summary>
        public Tensor Buffer(string name, out bool fresh)
        {
            fresh = !_buffers.TryGetValue(name, out var b);
            if (fresh)
                using (TensorScope.Untracked())
                {
                    b = Tensor.Zeros(Shape, DType.Float32, Device);
                    _buffers[name] = b;
                }
            return b!;
        }

        public IEnumerable<KeyValuePair<string, Tensor>> Buffers => _buffers;

        /// <summary>Whether buffer <paramref name="name"/> exists.</summary>
        internal bool HasBuffer(string name) => _buffers.ContainsKey(name);

        /// <summary>Moves the master into <paramref name="home"/> (float32, contiguous, the parameter's shape; this state takes
        /// ownership): the current master's values, or the parameter cast to float32 when there is none yet.</summary>
        internal void MoveMaster(Tensor home, Tensor param)
        {
            if (Master is not null) Op.CopyInto(Master, home);
            else using (var cast = Op.Cast(param, DType.Float32)) Op.CopyInto(cast, home);
            Master?.Dispose();
            Master = home;
        }

        /// <summary>Moves buffer <paramref name="name"/> into <paramref name="home"/> (this state takes ownership): the current
        /// buffer's values, or zeros when there is none (only when <paramref name="create"/>, else home is left as it is and
        /// not registered; the caller disposes it).</summary>
        internal bool MoveBuffer(string name, Tensor home, bool create)
        {
            if (_buffers.Remove(name, out var old))
            {
                Op.CopyInto(old, home);
                old.Dispose();
            }
            else if (!create) return false;
            _buffers[name] = home;
            return true;
        }

        /// <summary>Sets a buffer to a float32 copy of <paramref name="value"/> on this parameter's device.</summary>
        public void SetBuffer(string name, Tensor value)
        {
            using (TensorScope.Untracked())
            {
                Tensor copy;
                using (var onDevice = Op.To(value, Device)) copy = Op.Cast(onDevice, DType.Float32);
                if (_buffers.Remove(name, out var old)) old.Dispose();
                _buffers[name] = copy;
            }
        }

        public void Dispose()
        {
            Master?.Dispose();
            foreach (var b in _buffers.Values) b.Dispose();
            _buffers.Clear();
        }
    }
}
