using Osprey.Core.Autograd;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Ops;

/// <summary>
/// The forward ops. Each one validates its arguments (throwing <see cref="OpArgumentException"/> that
/// names the op and the shapes), allocates its output on the inputs' device and dispatches to that
/// device's <see cref="IBackend"/>. Ops are pure: inputs are never modified, the caller owns the result.
/// Every op is a function of tensors and plain parameters only, so autograd can attach a backward
/// function to each one by name. Op families live in the partial files beside this one.
/// </summary>
public static partial class Op
{
    private static void SameDevice(string op, Tensor a, Tensor b)
    {
        a.ThrowIfDisposed();
        b.ThrowIfDisposed();
        if (a.Device != b.Device) OpArgumentException.Throw(op, $"tensors on different devices ({a.Device} and {b.Device})");
    }

    private static void SameDType(string op, Tensor a, Tensor b)
    {
        if (a.DType != b.DType) OpArgumentException.Throw(op, $"dtypes differ ({a.DType.Name()} {a.Shape} and {b.DType.Name()} {b.Shape})");
    }

    private static void RequireFloat(string op, Tensor x)
    {
        if (!x.DType.IsFloating()) OpArgumentException.Throw(op, $"needs a floating-point tensor, got {x.DType.Name()} {x.Shape}");
    }

    private static void RequireRank(string op, Tensor x, int rank, string what = "input")
    {
        if (x.Rank != rank) OpArgumentException.Throw(op, $"{what} must be {rank}-D, got shape {x.Shape}");
    }

    private static Tensor EmptyLike(Tensor x, Shape shape, DType? dtype = null, MemoryFormat format = MemoryFormat.Contiguous) =>
        Tensor.Empty(shape, dtype ?? x.DType, x.Device, format);

    /// <summary>The memory format an op should produce for a 4-D input (channels_last in, channels_last out).</summary>
    private static MemoryFormat FormatOf(Tensor x) =>
        x.Rank == 4 && !x.IsContiguous() && x.IsContiguous(MemoryFormat.ChannelsLast) ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous;

    /// <summary>A dense copy (or a shared view if already dense) in the given memory format.</summary>
    public static Tensor Contiguous(Tensor x, MemoryFormat format = MemoryFormat.Contiguous)
    {
        var y = Dense(x, format);
        if (GradTape.Active is { } tape) tape.Record(new IdentityNode("contiguous"), y, x);
        return y;
    }

    /// <summary><see cref="Contiguous"/> without recording on a tape: an op's own operand preparation (the op records itself).</summary>
    internal static Tensor Dense(Tensor x, MemoryFormat format = MemoryFormat.Contiguous)
    {
        x.ThrowIfDisposed();
        if (x.IsContiguous(format)) return x.ShareView();
        var y = EmptyLike(x, x.Shape, format: format);
        x.Backend.Copy(x, y);
        return y;
    }

    /// <summary>Dense in either NCHW or NHWC (keeps whichever x already has).</summary>
    private static Tensor Dense4D(Tensor x) => x.DenseFormat is not null ? x.ShareView() : Dense(x);

    /// <summary>A copy on another device (same shape, dtype, contiguous).</summary>
    public static Tensor To(Tensor x, Device device)
    {
        x.ThrowIfDisposed();
        using var c = Contiguous(x);
        if (device == x.Device) return c.Share();
        var y = Tensor.Empty(x.Shape, x.DType, device);
        var bytes = new byte[c.Numel * c.ElementSize];
        c.Backend.Download(c.Storage, c.Offset * c.ElementSize, bytes);
        y.Backend.Upload(bytes, y.Storage, 0);
        return y;
    }

    /// <summary>Element type conversion (round to nearest even into float16/bfloat16).</summary>
    public static Tensor Cast(Tensor x, DType dtype)
    {
        x.ThrowIfDisposed();
        if (dtype == x.DType) return Contiguous(x);
        var y = EmptyLike(x, x.Shape, dtype, FormatOf(x));
        x.Backend.Cast(x, y);
        if (GradTape.Active is { } tape) tape.Record(new IdentityNode("cast"), y, x);
        return y;
    }

    /// <summary>Writes x into dst (same shape; dst may be a view). Converts dtype if they differ.</summary>
    public static void CopyInto(Tensor x, Tensor dst)
    {
        SameDevice("copy", x, dst);
        if (x.Shape != dst.Shape) OpArgumentException.Throw("copy", $"source {x.Shape} and destination {dst.Shape} differ in shape");
        if (x.DType == dst.DType) x.Backend.Copy(x, dst);
        else x.Backend.Cast(x, dst);
    }
}
