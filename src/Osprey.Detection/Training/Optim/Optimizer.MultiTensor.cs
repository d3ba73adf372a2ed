using System.Runtime.InteropServices;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Cuda.Training;

namespace Osprey.Detection.Training.Optim;

/// <summary>What <see cref="Optimizer.TryStepMultiTensor"/> did: whether the update was applied (false: amp found an inf or
/// NaN gradient) and the global gradient norm before clipping (NaN when clipping is off).</summary>
public readonly record struct MultiTensorOutcome(bool Taken, double GradNorm);

/// <summary>Device addresses and sizes one multi-tensor update launch needs (see <see cref="OptimizerKernels"/>).</summary>
internal readonly record struct MultiTensorLaunch(ulong Entries, ulong Chunks, int ChunkCount, ulong Masters, ulong Buffer0, ulong Buffer1,
    ulong Buffer2, ulong Status, int SkipOnInf, long Step);

public abstract partial class Optimizer
{
    private MultiTensorState? _multi;

    /// <summary>The float32 state buffers the multi-tensor kernel updates, in its argument order; null when this optimizer
    /// has no multi-tensor kernel.</summary>
    private protected virtual string[]? MultiTensorBuffers => null;

    /// <summary>Queues this optimizer's multi-tensor update kernel (<see cref="MultiTensorLaunch.Step"/> is the step being taken, 1-based).</summary>
    private protected virtual void LaunchMultiTensor(OptimizerKernels kernels, in MultiTensorLaunch launch) =>
        throw new NotSupportedException($"{Name}: no multi-tensor kernel");

    /// <summary>
    /// The whole optimiser phase of a step in three kernel launches on one CUDA device, as torch's fused optimisers (the
    /// per-tensor <see cref="Step"/> takes some ten launches per parameter): the gradients (any float dtype, contiguous)
    /// times <paramref name="inverseScale"/>, checked for inf/NaN (<paramref name="checkFinite"/>: a non-finite gradient
    /// skips the update on the device), clipped to a global norm of <paramref name="clipNorm"/> (0: off; as
    /// torch.nn.utils.clip_grad_norm_ on the unscaled gradients), then the optimizer's update on FP32 values, the FP32
    /// masters of 16-bit parameters written and the parameters refreshed from them. Masters and state buffers live in flat
    /// float32 buffers (one per kind) with per-parameter views, which <see cref="StateBuffers"/> and <see cref="Master"/>
    /// return as before. The host waits once, for the found-inf flag and the norm, and only when checking or clipping.
    /// Same semantics as unscaling, <see cref="Gradients.ClipByGlobalNorm"/> and <see cref="Step"/> one tensor at a time
    /// (the update itself bit for bit; the norm up to summation order).
    /// Returns null, having done nothing, when this does not apply: not every tensor on one CUDA device, a layout other than
    /// contiguous (or channels-last for 16-bit parameters), or an optimizer without a multi-tensor kernel.
    /// </summary>
    public MultiTensorOutcome? TryStepMultiTensor(IReadOnlyList<Tensor> parameters, IReadOnlyList<Tensor> grads, float inverseScale,
        bool checkFinite, double clipNorm)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(grads);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (parameters.Count != grads.Count) throw new ArgumentException($"{Name}: {parameters.Count} parameters, {grads.Count} gradients");
        if (!(inverseScale > 0) || !float.IsFinite(inverseScale)) throw new ArgumentOutOfRangeException(nameof(inverseScale), $"{Name}: inverse scale {inverseScale} must be positive and finite");
        if (double.IsNaN(clipNorm)) throw new ArgumentOutOfRangeException(nameof(clipNorm), $"{Name}: clip norm is NaN");
        if (MultiTensorBuffers is null || parameters.Count == 0 || !MultiTensorApplies(parameters, grads)) return null;
        if (Steps > 0 && parameters.Count != _state.Count)
            throw new ArgumentException($"{Name}: step with {parameters.Count} parameters, earlier steps had {_state.Count}");
        for (int i = 0; i < parameters.Count; i++) CheckPair(new ParamGrad(parameters[i], grads[i]), i);
        if (_multi is null || !_multi.Matches(parameters))
        {
            DetachMultiTensor();
            using (TensorScope.Untracked())
            {
                for (int i = _state.Count; i < parameters.Count; i++) _state.Add(new ParamState(parameters[i], null));
                _multi = new MultiTensorState(this, parameters, grads);
            }
        }
        return _multi.Step(this, parameters, grads, inverseScale, checkFinite, clipNorm);
    }

    /// <summary>Every tensor on one CUDA device, in a layout the kernels address.</summary>
    private static bool MultiTensorApplies(IReadOnlyList<Tensor> parameters, IReadOnlyList<Tensor> grads)
    {
        var device = parameters[0].Device;
        if (device.Type != DeviceType.Cuda || BackendRegistry.Get(device) is not CudaBackend) return false;
        for (int i = 0; i < parameters.Count; i++)
        {
            var (p, g) = (parameters[i], grads[i]);
            if (p is null || g is null || p.Device != device || g.Device != device) return false;
            if (OptimizerKernels.DTypeCode(p.DType) < 0 || OptimizerKernels.DTypeCode(g.DType) < 0 || !g.IsContiguous()) return false;
            if (!p.IsContiguous() && (p.DType == DType.Float32 || p.Rank != 4 || !p.IsContiguous(MemoryFormat.ChannelsLast))) return false;
        }
        return true;
    }

    /// <summary>Drops the multi-tensor tables (the state's views keep the flat buffers alive); a later multi-tensor step
    /// builds them again. Called by the per-tensor <see cref="Step"/>, which may create state the tables do not know.</summary>
    private void DetachMultiTensor()
    {
        _multi?.Dispose();
        _multi = null;
    }

    private void DisposeMultiTensor() => DetachMultiTensor();

    /// <summary>The device tables of a parameter list: entries, chunks, flat master and state buffers, partials and status.</summary>
    private sealed class MultiTensorState : IDisposable
    {
        private readonly CudaBackend _backend;
        private readonly OptimizerKernels _kernels;
        private readonly OptEntry[] _host;
        private readonly Tensor _entries, _chunks, _partials, _status;
        private readonly Tensor? _masters;
        private readonly Tensor[] _flat;
        private readonly string[] _names;
        /// <summary>[buffer][parameter]: views not yet registered with the parameter's state (registered after the first taken step).</summary>
        private readonly Tensor?[][] _pending;
        private readonly int _chunkCount;
        private bool _dirty;

        public MultiTensorState(Optimizer owner, IReadOnlyList<Tensor> parameters, IReadOnlyList<Tensor> grads)
        {
            var device = parameters[0].Device;
            _backend = (CudaBackend)BackendRegistry.Get(device);
            _kernels = new OptimizerKernels(_backend);
            _names = owner.MultiTensorBuffers!;
            int n = parameters.Count;
            _host = new OptEntry[n];
            var chunks = new List<int>();
            long total = 0;
            bool anyHalf = false;
            for (int i = 0; i < n; i++)
            {
                _host[i] = Entry(parameters[i], grads[i], total);
                long numel = parameters[i].Numel;
                for (long c = 0; c * OptimizerKernels.ChunkElements < numel; c++) { chunks.Add(i); chunks.Add(checked((int)c)); }
                total += numel;
                anyHalf |= parameters[i].DType != DType.Float32;
            }
            _chunkCount = chunks.Count / 2;
            var made = new List<Tensor>();
            try
            {
                int[] table = chunks.Count == 0 ? new int[2] : chunks.ToArray();
                _chunks = Track(made, Tensor.FromSpan<int>(table, new Shape(table.Length), device));
                _partials = Track(made, Tensor.Empty(new Shape(Math.Max(_chunkCount, 1)), DType.Float32, device));
                _status = Track(made, Tensor.Zeros(new Shape(3), DType.Int64, device));
                _flat = new Tensor[_names.Length];
                for (int b = 0; b < _flat.Length; b++) _flat[b] = Track(made, Tensor.Zeros(new Shape(checked((int)Math.Max(total, 1))), DType.Float32, device));
                if (anyHalf) _masters = Track(made, Tensor.Empty(new Shape(checked((int)Math.Max(total, 1))), DType.Float32, device));
                _pending = new Tensor?[_names.Length][];
                for (int b = 0; b < _names.Length; b++) _pending[b] = new Tensor?[n];
                for (int i = 0; i < n; i++)
                {
                    var st = owner._state[i];
                    if (_masters is not null && parameters[i].DType != DType.Float32) st.MoveMaster(View(_masters, _host[i].Flat, parameters[i].Shape), parameters[i]);
                    bool fresh = false;
                    for (int b = 0; b < _names.Length; b++)
                    {
                        var view = View(_flat[b], _host[i].Flat, parameters[i].Shape);
                        if (st.MoveBuffer(_names[b], view, create: false)) continue;
                        _pending[b][i] = view;
                        fresh = true;
                    }
                    _host[i].Fresh = fresh ? 1 : 0;
                }
                _entries = Track(made, Tensor.Empty(new Shape(n * Marshal.SizeOf<OptEntry>()), DType.UInt8, device));
                Upload();
            }
            catch
            {
                foreach (var t in made) t.Dispose();
                foreach (var row in _pending ?? []) if (row is not null) foreach (var v in row) v?.Dispose();
                throw;
            }
        }

        private static Tensor Track(List<Tensor> made, Tensor t)
        {
            made.Add(t);
            return t;
        }

        private static Tensor View(Tensor flat, long at, Shape shape)
        {
            using var slice = flat.Slice(0, checked((int)at), checked((int)(at + shape.Numel)));
            return slice.Reshape(shape.ToArray());
        }

        private static OptEntry Entry(Tensor p, Tensor g, long flat)
        {
            bool nhwc = !p.IsContiguous();
            return new OptEntry
            {
                Param = (ulong)p.DataPointer, Grad = (ulong)g.DataPointer, Flat = flat, Numel = p.Numel,
                ParamType = OptimizerKernels.DTypeCode(p.DType), GradType = OptimizerKernels.DTypeCode(g.DType),
                Nhwc = nhwc ? 1 : 0, C = nhwc ? p.Shape[1] : 0, Hw = nhwc ? p.Shape[2] * p.Shape[3] : 0,
            };
        }

        /// <summary>Whether these tables were built for <paramref name="parameters"/> (same tensors' addresses, dtypes and layouts).</summary>
        public bool Matches(IReadOnlyList<Tensor> parameters)
        {
            if (parameters.Count != _host.Length) return false;
            for (int i = 0; i < _host.Length; i++)
            {
                var p = parameters[i];
                if ((ulong)p.DataPointer != _host[i].Param || p.Numel != _host[i].Numel || OptimizerKernels.DTypeCode(p.DType) != _host[i].ParamType
                    || (p.IsContiguous() ? 0 : 1) != _host[i].Nhwc) return false;
            }
            return true;
        }

        private void Upload()
        {
            _backend.Upload(MemoryMarshal.AsBytes(_host.AsSpan()), _entries.Storage, _entries.Offset);
            _dirty = false;
        }

        public MultiTensorOutcome Step(Optimizer owner, IReadOnlyList<Tensor> parameters, IReadOnlyList<Tensor> grads, float inverseScale,
            bool checkFinite, double clipNorm)
        {
            // gradients may move between steps (fresh tensors each backward); flat gradient homes keep them in place
            for (int i = 0; i < _host.Length; i++)
            {
                var g = grads[i];
                ulong at = (ulong)g.DataPointer;
                int type = OptimizerKernels.DTypeCode(g.DType);
                if (at == _host[i].Grad && type == _host[i].GradType) continue;
                _host[i].Grad = at;
                _host[i].GradType = type;
                _dirty = true;
            }
            if (_dirty) Upload();
            ulong entries = CudaPtr(_entries), chunks = CudaPtr(_chunks);
            bool reduce = checkFinite || clipNorm > 0;
            ulong status = 0;
            if (reduce && _chunkCount > 0)
            {
                _kernels.SumSquares(entries, chunks, _chunkCount, CudaPtr(_partials));
                _kernels.Finalize(CudaPtr(_partials), _chunkCount, inverseScale, clipNorm > 0 ? clipNorm : 0, checkFinite, CudaPtr(_status));
                status = CudaPtr(_status);
            }
            else if (inverseScale != 1f)
            {
                // no reduction needed, but the gradients still need unscaling: a status holding just the factor
                Span<long> fixedStatus = [BitConverter.DoubleToInt64Bits(double.NaN), (long)(uint)BitConverter.SingleToInt32Bits(inverseScale), 0];
                _backend.Upload(MemoryMarshal.AsBytes(fixedStatus), _status.Storage, _status.Offset * 8);
                status = CudaPtr(_status);
            }
            var launch = new MultiTensorLaunch(entries, chunks, _chunkCount, _masters is null ? 0 : CudaPtr(_masters),
                _flat.Length > 0 ? CudaPtr(_flat[0]) : 0, _flat.Length > 1 ? CudaPtr(_flat[1]) : 0, _flat.Length > 2 ? CudaPtr(_flat[2]) : 0,
                status, checkFinite ? 1 : 0, owner.Steps + 1);
            if (_chunkCount > 0) owner.LaunchMultiTensor(_kernels, launch);
            bool taken = true;
            double norm = double.NaN;
            if (reduce && _chunkCount > 0)
            {
                Span<OptStatus> s = stackalloc OptStatus[1];
                _backend.Download(_status.Storage, _status.Offset * 8, MemoryMarshal.AsBytes(s));
                taken = !(checkFinite && s[0].FoundInf != 0);
                norm = clipNorm > 0 ? s[0].Norm : double.NaN;
            }
            if (!taken) return new MultiTensorOutcome(false, double.NaN);
            owner.Steps++;
            Register(owner);
            return new MultiTensorOutcome(true, norm);
        }

        /// <summary>After the first taken step: the state buffers exist (as the per-tensor step creates them at its first update).</summary>
        private void Register(Optimizer owner)
        {
            bool changed = false;
            for (int b = 0; b < _pending.Length; b++)
                for (int i = 0; i < _pending[b].Length; i++)
                {
                    if (_pending[b][i] is not { } view) continue;
                    _pending[b][i] = null;
                    owner._state[i].MoveBuffer(_names[b], view, create: true);
                    changed = true;
                }
            if (!changed) return;
            for (int i = 0; i < _host.Length; i++) _host[i].Fresh = 0;
            _dirty = true;
        }

        private static ulong CudaPtr(Tensor t) => (ulong)t.DataPointer;

        public void Dispose()
        {
            foreach (var row in _pending) foreach (var v in row) v?.Dispose();
            _entries.Dispose();
            _chunks.Dispose();
            _partials.Dispose();
            _status.Dispose();
            _masters?.Dispose();
            foreach (var f in _flat) f.Dispose();
        }
    }
}
