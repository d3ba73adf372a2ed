using Osprey.Core.Backends;

namespace Osprey.Engine.Graph;

/// <summary>
/// The node kinds of the engine IR: one per <see cref="IBackend"/> kernel the models reach, plus
/// <see cref="Concat"/> (lifted from copies into slices) and <see cref="View"/> (a strided alias, no work).
/// </summary>
public enum OpKind
{
    /// <summary>y = x with a new layout (x any strides, y dense).</summary>
    Copy,
    /// <summary>y = (dtype of y) x.</summary>
    Cast,
    Unary,
    Binary,
    Where,
    Reduce,
    ArgMax,
    Softmax,
    MatMul,
    Conv2d,
    Pool2d,
    Resize,
    /// <summary>Inputs copied (or cast) into consecutive slices of the output along an axis.</summary>
    Concat,
    /// <summary>An alias of the input buffer: output shape, strides and offset in the input's elements. Executes nothing.</summary>
    View,
}

/// <summary>Typed attributes of a node; each kind has its own record (or <see cref="NoAttrs"/>).</summary>
public abstract record NodeAttrs;

public sealed record NoAttrs : NodeAttrs
{
    public static readonly NoAttrs Instance = new();
}

/// <summary>Conv2d inputs: x, weight, then bias if <paramref name="HasBias"/>, then residual if <paramref name="HasResidual"/>.</summary>
public sealed record ConvAttrs(Conv2dParams Geometry, UnaryOp Activation, bool HasBias, bool HasResidual) : NodeAttrs;

/// <summary>MatMul inputs: a, b, then bias, then residual, as for convolution.</summary>
public sealed record MatMulAttrs(bool TransposeA, bool TransposeB, UnaryOp Activation, bool HasBias, bool HasResidual) : NodeAttrs;

public sealed record UnaryAttrs(UnaryOp Op) : NodeAttrs;

public sealed record BinaryAttrs(BinaryOp Op) : NodeAttrs;

public sealed record ReduceAttrs(ReduceOp Op, int[] Axes) : NodeAttrs
{
    public bool Equals(ReduceAttrs? other) => other is not null && Op == other.Op && Axes.AsSpan().SequenceEqual(other.Axes);
    public override int GetHashCode() => HashCode.Combine(Op, Axes.Length);
}

public sealed record AxisAttrs(int Axis) : NodeAttrs;

public sealed record SoftmaxAttrs(int Axis, bool Log) : NodeAttrs;

public sealed record PoolAttrs(PoolKind Kind, Pool2dParams Geometry) : NodeAttrs;

public sealed record ResizeAttrs(ResizeMode Mode) : NodeAttrs;

public sealed record ViewAttrs(long[] Strides, long Offset) : NodeAttrs
{
    public bool Equals(ViewAttrs? other) => other is not null && Offset == other.Offset && Strides.AsSpan().SequenceEqual(other.Strides);
    public override int GetHashCode() => HashCode.Combine(Offset, Strides.Length);
}
