using Osprey.Core.Autograd;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Ops;

public static partial class Op
{
    public static Tensor Unary(UnaryOp op, Tensor x)
    {
        x.ThrowIfDisposed();
        RequireFloat(op.Kind.ToString().ToLowerInvariant(), x);
        if (op.Kind == UnaryKind.Clamp && op.A > op.B) OpArgumentException.Throw("clamp", $"min {op.A} is greater than max {op.B}");
        var y = EmptyLike(x, x.Shape, format: FormatOf(x));
        x.Backend.Unary(op, x, y);
        if (GradTape.Active is { } tape) tape.Record(new UnaryNode(op), y, x);
        return y;
    }

    public static Tensor Neg(Tensor x) => Unary(UnaryKind.Neg, x);
    public static Tensor Abs(Tensor x) => Unary(UnaryKind.Abs, x);
    public static Tensor Sqrt(Tensor x) => Unary(UnaryKind.Sqrt, x);
    public static Tensor Exp(Tensor x) => Unary(UnaryKind.Exp, x);
    public static Tensor Log(Tensor x) => Unary(UnaryKind.Log, x);
    public static Tensor Relu(Tensor x) => Unary(UnaryKind.Relu, x);
    public static Tensor Relu6(Tensor x) => Unary(UnaryKind.Relu6, x);
    public static Tensor LeakyRelu(Tensor x, float slope = 0.01f) => Unary(UnaryOp.LeakyRelu(slope), x);
    public static Tensor Silu(Tensor x) => Unary(UnaryKind.Silu, x);
    public static Tensor Sigmoid(Tensor x) => Unary(UnaryKind.Sigmoid, x);
    public static Tensor HardSigmoid(Tensor x) => Unary(UnaryKind.HardSigmoid, x);
    public static Tensor HardSwish(Tensor x) => Unary(UnaryKind.HardSwish, x);
    public static Tensor Tanh(Tensor x) => Unary(UnaryKind.Tanh, x);
    public static Tensor Gelu(Tensor x) => Unary(UnaryKind.Gelu, x);
    public static Tensor Clamp(Tensor x, float min, float max) => Unary(UnaryOp.Clamp(min, max), x);

    /// <summary>a op b with numpy broadcasting. Comparisons give bool tensors.</summary>
    public static Tensor Binary(BinaryOp op, Tensor a, Tensor b)
    {
        string name = op.ToString().ToLowerInvariant();
        SameDevice(name, a, b);
        SameDType(name, a, b);
        if (a.DType == DType.Bool && op is not (BinaryOp.Eq or BinaryOp.Ne))
            OpArgumentException.Throw(name, "bool tensors support only eq and ne");
        var shape = Shape.Broadcast(a.Shape, b.Shape, name);
        bool compare = op >= BinaryOp.Eq;
        var format = a.Shape == shape ? FormatOf(a) : b.Shape == shape ? FormatOf(b) : MemoryFormat.Contiguous;
        var y = EmptyLike(a, shape, compare ? DType.Bool : a.DType, format);
        using var ea = a.ExpandView(shape);
        using var eb = b.ExpandView(shape);
        a.Backend.Binary(op, ea, eb, y);
        if (!compare && GradTape.Active is { } tape) tape.Record(new BinaryNode(op), y, a, b);
        return y;
    }

    /// <summary>a op scalar, the scalar taking a's dtype.</summary>
    public static Tensor Binary(BinaryOp op, Tensor a, double scalar)
    {
        using var s = Tensor.Full(Shape.Scalar, scalar, a.DType, a.Device);
        return Binary(op, a, s);
    }

    public static Tensor Add(Tensor a, Tensor b) => Binary(BinaryOp.Add, a, b);
    public static Tensor Sub(Tensor a, Tensor b) => Binary(BinaryOp.Sub, a, b);
    public static Tensor Mul(Tensor a, Tensor b) => Binary(BinaryOp.Mul, a, b);
    public static Tensor Div(Tensor a, Tensor b) => Binary(BinaryOp.Div, a, b);
    public static Tensor Maximum(Tensor a, Tensor b) => Binary(BinaryOp.Max, a, b);
    public static Tensor Minimum(Tensor a, Tensor b) => Binary(BinaryOp.Min, a, b);
    public static Tensor Pow(Tensor a, Tensor b) => Binary(BinaryOp.Pow, a, b);

    /// <summary>condition ? a : b with broadcasting over all three.</summary>
    public static Tensor Where(Tensor condition, Tensor a, Tensor b)
    {
        SameDevice("where", condition, a);
        SameDevice("where", a, b);
        SameDType("where", a, b);
        if (condition.DType != DType.Bool) OpArgumentException.Throw("where", $"condition must be bool, got {condition.DType.Name()}");
        var shape = Shape.Broadcast(Shape.Broadcast(condition.Shape, a.Shape, "where"), b.Shape, "where");
        var y = EmptyLike(a, shape);
        using var ec = condition.ExpandView(shape);
        using var ea = a.ExpandView(shape);
        using var eb = b.ExpandView(shape);
        a.Backend.Where(ec, ea, eb, y);
        if (GradTape.Active is { } tape) tape.Record(new WhereNode(), y, condition, a, b);
        return y;
    }

    /// <summary>Inference batch norm on [N, C, ...]: (x - mean) / sqrt(var + eps) * weight + bias, as one scale and shift per channel.</summary>
    public static Tensor BatchNorm(Tensor x, Tensor weight, Tensor bias, Tensor runningMean, Tensor runningVar, float eps = 1e-5f)
    {
        if (x.Rank < 2) OpArgumentException.Throw("batch_norm", $"input must be at least 2-D, got {x.Shape}");
        int c = x.Shape[1];
        foreach (var (t, n) in new[] { (weight, "weight"), (bias, "bias"), (runningMean, "running_mean"), (runningVar, "running_var") })
            if (t.Rank != 1 || t.Shape[0] != c) OpArgumentException.Throw("batch_norm", $"{n} must be [{c}] for input {x.Shape}, got {t.Shape}");
        var (scale, shift) = BatchNormScaleShift(weight, bias, runningMean, runningVar, eps);
        var bshape = new int[x.Rank];
        Array.Fill(bshape, 1);
        bshape[1] = c;
        using var s = scale.Reshape(bshape);
        using var h = shift.Reshape(bshape);
        using var xs = Mul(x, s);
        scale.Dispose();
        shift.Dispose();
        return Add(xs, h);
    }

    /// <summary>Per-channel scale = weight / sqrt(var + eps) and shift = bias - mean * scale (the form that folds into a convolution).</summary>
    public static (Tensor Scale, Tensor Shift) BatchNormScaleShift(Tensor weight, Tensor bias, Tensor mean, Tensor variance, float eps)
    {
        using var ve = Binary(BinaryOp.Add, variance, eps);
        using var sd = Sqrt(ve);
        var scale = Div(weight, sd);
        using var ms = Mul(mean, scale);
        var shift = Sub(bias, ms);
        return (scale, shift);
    }
}
