using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Core.Autograd;

/// <summary>y = op(x): the backend's UnaryBackward, from x or y as the kind needs.</summary>
internal sealed class UnaryNode(UnaryOp op) : GradNode
{
    private Tensor? _x, _y;

    public override string Name => op.Kind.ToString().ToLowerInvariant();

    /// <summary>Kinds whose derivative the backend reads from the output alone.</summary>
    public static bool FromOutput(UnaryKind k) =>
        k is UnaryKind.Identity or UnaryKind.Neg or UnaryKind.Relu or UnaryKind.Relu6 or UnaryKind.Sigmoid or UnaryKind.Tanh or UnaryKind.Exp or UnaryKind.Sqrt;

    public override void Save()
    {
        if (FromOutput(op.Kind)) _y = Keep(Output);
        else _x = Keep(Inputs[0]!);
    }

    public override void Backward(Tensor g, Tensor?[] inputGrads)
    {
        using var gc = Op.Contiguous(g);
        using var xc = Op.Contiguous(_x ?? _y!);
        using var yc = Op.Contiguous(_y ?? _x!);
        var gx = Tensor.Empty(g.Shape, g.DType, g.Device);
        g.Backend.UnaryBackward(op, xc, yc, gc, gx);
        inputGrads[0] = gx;
    }
}

/// <summary>y = a op b with broadcasting; each operand's gradient is summed back to its shape.</summary>
internal sealed class BinaryNode(BinaryOp op) : GradNode
{
    private Tensor? _a, _b, _y;

    public override string Name => op.ToString().ToLowerInvariant();

    public override void Save()
    {
        switch (op)
        {
            case BinaryOp.Add or BinaryOp.Sub: break;
            case BinaryOp.Mul:
                if (Needs(0)) _b = Keep(Inputs[1]!);
                if (Needs(1)) _a = Keep(Inputs[0]!);
                break;
            case BinaryOp.Div:
                _b = Keep(Inputs[1]!);
                if (Needs(1)) _y = Keep(Output);
                break;
            case BinaryOp.Pow:
                _a = Keep(Inputs[0]!);
                _b = Keep(Inputs[1]!);
                if (Needs(1)) _y = Keep(Output);
                break;
            case BinaryOp.Max or BinaryOp.Min:
                _a = Keep(Inputs[0]!);
                _b = Keep(Inputs[1]!);
                break;
            default: throw new InvalidOperationException($"autograd: {Name} is not differentiable");
        }
    }

    public override void Backward(Tensor g, Tensor?[] inputGrads)
    {
        Shape sa = Inputs[0]!.Shape, sb = Inputs[1]!.Shape;
        switch (op)
        {
            case BinaryOp.Add:
                if (Needs(0)) inputGrads[0] = SumTo(g, sa);
                if (Needs(1)) inputGrads[1] = SumTo(g, sb);
                break;
            case BinaryOp.Sub:
                if (Needs(0)) inputGrads[0] = SumTo(g, sa);
                if (Needs(1)) { using var n = Op.Neg(g); inputGrads[1] = SumTo(n, sb); }
                break;
            case BinaryOp.Mul:
                if (Needs(0)) { using var t = Op.Mul(g, _b!); inputGrads[0] = SumTo(t, sa); }
                if (Needs(1)) { using var t = Op.Mul(g, _a!); inputGrads[1] = SumTo(t, sb); }
                break;
            case BinaryOp.Div:
                {
                    using var q = Op.Div(g, _b!);                     // g / b
                    if (Needs(0)) inputGrads[0] = SumTo(q, sa);
                    if (Needs(1)) { using var t = Op.Mul(q, _y!); using var n = Op.Neg(t); inputGrads[1] = SumTo(n, sb); } // -g a / b^2 = -(g / b) y
                    break;
                }
            case BinaryOp.Pow:
                if (Needs(0))
                {
                    // g * b * a^(b - 1)
                    using var bm1 = Op.Binary(BinaryOp.Sub, _b!, 1.0);
                    using var p = Op.Pow(_a!, bm1);
                    using var bp = Op.Mul(_b!, p);
                    using var t = Op.Mul(g, bp);
                    inputGrads[0] = SumTo(t, sa);
                }
                if (Needs(1))
                {
                    // g * y * log(a), 0 where a == 0 (torch's masked form)
                    using var la = Op.Log(_a!);
                    using var t = Op.Mul(_y!, la);
                    using var zero = Tensor.Zeros(Shape.Scalar, t.DType, t.Device);
                    using var a0 = Op.Binary(BinaryOp.Eq, _a!, zero);
                    using var safe = Op.Where(a0, zero, t);
                    using var gt = Op.Mul(g, safe);
                    inputGrads[1] = SumTo(gt, sb);
                }
                break;
            case BinaryOp.Max or BinaryOp.Min:
                {
                    // torch: the larger (smaller) operand takes g, ties split it in half
                    using var half = Op.Binary(BinaryOp.Mul, g, 0.5);
                    using var eq = Op.Binary(BinaryOp.Eq, _a!, _b!);
                    using var zero = Tensor.Zeros(Shape.Scalar, g.DType, g.Device);
                    using var aWins = Op.Binary(op == BinaryOp.Max ? BinaryOp.Gt : BinaryOp.Lt, _a!, _b!);
                    if (Needs(0))
                    {
                        using var tie = Op.Where(eq, half, zero);
                        using var t = Op.Where(aWins, g, tie);
                        inputGrads[0] = SumTo(t, sa);
                    }
                    if (Needs(1))
                    {
                        using var bWins = Op.Binary(op == BinaryOp.Max ? BinaryOp.Lt : BinaryOp.Gt, _a!, _b!);
                        using var tie = Op.Where(eq, half, zero);
                        using var t = Op.Where(bWins, g, tie);
                        inputGrads[1] = SumTo(t, sb);
                    }
                    break;
                }
        }
    }
}

/// <summary>y = cond ? a : b: g goes to a where cond holds and to b elsewhere.</summary>
internal sealed class WhereNode : GradNode
{
    private Tensor? _cond;

    public override string Name => "where";

    public override void Save() => _cond = Keep(Inputs[0]!);

    public override void Backward(Tensor g, Tensor?[] inputGrads)
    {
        using var zero = Tensor.Zeros(Shape.Scalar, g.DType, g.Device);
        if (Needs(1)) { using var t = Op.Where(_cond!, g, zero); inputGrads[1] = SumTo(t, Inputs[1]!.Shape); }
        if (Needs(2)) { using var t = Op.Where(_cond!, zero, g); inputGrads[2] = SumTo(t, Inputs[2]!.Shape); }
    }
}

/// <summary>y = x in another dtype or layout (Cast, Contiguous, Share): g converted back to x's dtype.</summary>
internal sealed class IdentityNode(string name) : GradNode
{
    public override string Name => name;

    public override void Backward(Tensor g, Tensor?[] inputGrads)
    {
        var x = Inputs[0]!;
        inputGrads[0] = g.DType == x.DType ? g.Share() : Op.Cast(g, x.DType);
    }
}
