using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Engine.Graph;
using Osprey.Engine.Tracing;
using Osprey.Tests.Support;

namespace Osprey.Tests.Engine;

/// <summary>
/// A small network written with plain Op calls, exercising what the passes rewrite: conv, batch norm as
/// scale/shift, relu, residual add, an L2 normalisation, and a head flatten (reshape/permute copies) into a concat.
/// </summary>
internal static class SmallNet
{
    public const int C = 8, H = 6, W = 5;

    private static Tensor P(string name, params int[] shape) => Tensor.FromSpan<float>(Formula.Values(name, new Shape(shape).Numel), new Shape(shape));

    public static (Tensor, Tensor) Forward(Tensor x, Device device)
    {
        using var scope = new TensorScope();
        Tensor D(Tensor t) => Op.To(t, device);
        var w1 = D(P("w1", C, 3, 3, 3));
        var w2 = D(P("w2", C, C, 3, 3));
        var w3 = D(P("w3", 6, C, 1, 1));
        var g = D(P("g", C));
        var b = D(P("b", C));
        var m = D(P("m", C));
        using var v0 = P("v", C);
        var v = D(Op.Abs(v0));
        var y = Op.Relu(Op.BatchNorm(Op.Conv2d(x, w1, Conv2dParams.Square(1, 1)), g, b, m, v));
        var z = Op.Relu(Op.Add(Op.Conv2d(y, w2, Conv2dParams.Square(1, 1)), y));
        var sq = Op.Sum(Op.Mul(z, z), [1], keepDims: true);
        var norm = Op.Div(z, Op.Binary(BinaryOp.Max, Op.Sqrt(sq), 1e-6));
        var head = Op.Conv2d(norm, w3);
        var flat = head.Reshape(x.Shape[0], 2, 3, H, W).Permute(0, 3, 4, 1, 2).Reshape(x.Shape[0], -1, 3);
        var cat = Op.Concat([flat, flat], 1);
        return (scope.Keep(cat), scope.Keep(Op.Mul(norm, norm)));
    }

    public static ComputeGraph Trace(int batch = 2)
    {
        using var tracer = new GraphTracer();
        using var x = tracer.Input("x", new Shape(batch, 3, H, W));
        var (a, b) = Forward(x, tracer.Device);
        tracer.Output("heads", a);
        tracer.Output("features", b);
        a.Dispose();
        b.Dispose();
        return tracer.Finish();
    }

    public static Tensor Input(int batch = 2)
    {
        using var x = Tensor.FromSpan<float>(Formula.Values("x", batch * 3L * H * W), new Shape(batch, 3, H, W));
        return Op.Contiguous(x, MemoryFormat.ChannelsLast);
    }
}
