using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Engine.Graph;

namespace Osprey.Engine.Runtime;

/// <summary>
/// One executable node: its tensors, epilogue and parameters are built once at setup, so running it is one
/// backend call with no allocation. <see cref="Create"/> maps a node kind to its step.
/// </summary>
internal abstract class Step : IDisposable
{
    public abstract void Run(IBackend backend);

    /// <summary>Releases views the step made for itself (the executor owns the tensors it was given).</summary>
    public virtual void Dispose() { }

    /// <summary>The step for a node, or null for views (no work).</summary>
    public static Step? Create(Node n, Func<Value, Tensor> tensor)
    {
        Tensor In(int i) => tensor(n.Inputs[i]);
        Tensor y = tensor(n.Output);
        switch (n.Kind)
        {
            case OpKind.View: return null;
            case OpKind.Copy: return new CopyStep(In(0), y);
            case OpKind.Cast: return new CastStep(In(0), y);
            case OpKind.Unary: return new UnaryStep(n.AttrsAs<UnaryAttrs>().Op, In(0), y);
            case OpKind.Binary: return new BinaryStep(n.AttrsAs<BinaryAttrs>().Op, In(0), In(1), y);
            case OpKind.Where: return new WhereStep(In(0), In(1), In(2), y);
            case OpKind.Reduce: return new ReduceStep(n.AttrsAs<ReduceAttrs>(), In(0), y);
            case OpKind.ArgMax: return new ArgMaxStep(n.AttrsAs<AxisAttrs>().Axis, In(0), y);
            case OpKind.Softmax: return new SoftmaxStep(n.AttrsAs<SoftmaxAttrs>(), In(0), y);
            case OpKind.Pool2d: return new PoolStep(n.AttrsAs<PoolAttrs>(), In(0), y);
            case OpKind.Resize: return new ResizeStep(n.AttrsAs<ResizeAttrs>().Mode, In(0), y);
            case OpKind.Conv2d:
            {
                var a = n.AttrsAs<ConvAttrs>();
                return new ConvStep(In(0), In(1), a.Geometry, EpilogueOf(n, a.HasBias, a.HasResidual, a.Activation, tensor), y);
            }
            case OpKind.MatMul:
            {
                var a = n.AttrsAs<MatMulAttrs>();
                return new MatMulStep(In(0), In(1), a.TransposeA, a.TransposeB, EpilogueOf(n, a.HasBias, a.HasResidual, a.Activation, tensor), y);
            }
            case OpKind.Concat:
            {
                int axis = n.AttrsAs<AxisAttrs>().Axis, start = 0;
                var pieces = new (Tensor, Tensor)[n.Inputs.Count];
                for (int i = 0; i < pieces.Length; i++)
                {
                    var piece = n.Inputs[i].Shape;
                    int len = ShapeInference.ConcatPiece(n, n.Inputs[i], axis, y.Rank)[axis];
                    var slice = y.Slice(axis, start, start + len);
                    if (piece.Rank != y.Rank) slice = Split(slice, axis, piece);
                    pieces[i] = (In(i), slice);
                    start += len;
                }
                return new ConcatStep(pieces);
            }
            default: throw new GraphException($"node {n.Name}: no executor step for {n.Kind}");
        }
    }

    /// <summary>A slice viewed with its axis split in two (the shape of a split concat piece); disposes the slice.</summary>
    private static Tensor Split(Tensor slice, int axis, Shape piece)
    {
        using (slice)
        {
            var strides = new long[piece.Rank];
            for (int d = 0; d < piece.Rank; d++)
                strides[d] = d < axis ? slice.Strides[d] : d == axis ? slice.Strides[axis] * piece[axis + 1] : slice.Strides[d - 1];
            return Tensor.AsStrided(slice.Storage, piece, strides, slice.Offset, slice.DType);
        }
    }

    private static Epilogue EpilogueOf(Node n, bool bias, bool residual, UnaryOp act, Func<Value, Tensor> tensor) =>
        new(bias ? tensor(n.Inputs[2]) : null, residual ? tensor(n.Inputs[bias ? 3 : 2]) : null, act);
}

internal sealed class CopyStep(Tensor x, Tensor y) : Step
{
    public override void Run(IBackend backend) => backend.Copy(x, y);
}

internal sealed class CastStep(Tensor x, Tensor y) : Step
{
    public override void Run(IBackend backend) => backend.Cast(x, y);
}

internal sealed class UnaryStep(UnaryOp op, Tensor x, Tensor y) : Step
{
    public override void Run(IBackend backend) => backend.Unary(op, x, y);
}

internal sealed class BinaryStep(BinaryOp op, Tensor a, Tensor b, Tensor y) : Step
{
    public override void Run(IBackend backend) => backend.Binary(op, a, b, y);
}

internal sealed class WhereStep(Tensor c, Tensor a, Tensor b, Tensor y) : Step
{
    public override void Run(IBackend backend) => backend.Where(c, a, b, y);
}

internal sealed class ReduceStep(ReduceAttrs attrs, Tensor x, Tensor y) : Step
{
    public override void Run(IBackend backend) => backend.Reduce(attrs.Op, x, attrs.Axes, y);
}

internal sealed class ArgMaxStep(int axis, Tensor x, Tensor y) : Step
{
    public override void Run(IBackend backend) => backend.ArgMax(x, axis, y);
}

internal sealed class SoftmaxStep(SoftmaxAttrs attrs, Tensor x, Tensor y) : Step
{
    public override void Run(IBackend backend) => backend.Softmax(x, attrs.Axis, attrs.Log, y);
}

internal sealed class PoolStep(PoolAttrs attrs, Tensor x, Tensor y) : Step
{
    public override void Run(IBackend backend) => backend.Pool2d(attrs.Kind, x, attrs.Geometry, y);
}

internal sealed class ResizeStep(ResizeMode mode, Tensor x, Tensor y) : Step
{
    public override void Run(IBackend backend) => backend.Resize(mode, x, y);
}

internal sealed class ConvStep(Tensor x, Tensor w, Conv2dParams p, Epilogue e, Tensor y) : Step
{
    public override void Run(IBackend backend) => backend.Conv2d(x, w, p, e, y);

    /// <summary>The operands, for choosing and pinning the backend's algorithm (Build/ConvAlgorithms).</summary>
    public (Tensor X, Tensor W, Conv2dParams P, Epilogue E, Tensor Y) Operands => (x, w, p, e, y);
}

internal sealed class MatMulStep(Tensor a, Tensor b, bool ta, bool tb, Epilogue e, Tensor y) : Step
{
    public override void Run(IBackend backend) => backend.MatMul(a, b, ta, tb, e, y);
}

/// <summary>Each input copied (same dtype) or cast into its slice of the output.</summary>
internal sealed class ConcatStep((Tensor Source, Tensor Slice)[] pieces) : Step
{
    public override void Run(IBackend backend)
    {
        foreach (var (s, d) in pieces)
        {
            if (s.Numel == 0) continue;
            if (s.DType == d.DType) backend.Copy(s, d);
            else backend.Cast(s, d);
        }
    }

    public override void Dispose()
    {
        foreach (var (_, d) in pieces) d.Dispose();
    }
}
