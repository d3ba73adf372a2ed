using Osprey.Core;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Tests.Core;

/// <summary>Bad arguments raise OpArgumentException naming the op and the shapes or values, never a native fault.</summary>
public class OpErrorTests
{
    private static void Fails(Func<Tensor> call, params string[] mentions)
    {
        var e = Assert.Throws<OpArgumentException>(() => { using var _ = call(); });
        foreach (var m in mentions) Assert.Contains(m, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Shape_and_dtype_mismatches()
    {
        using var a = Tensor.Zeros(new Shape(2, 3));
        using var b = Tensor.Zeros(new Shape(4));
        using var i = Tensor.Zeros(new Shape(2, 3), DType.Int32);
        Fails(() => Op.Add(a, b), "add", "[2, 3]", "[4]");
        Fails(() => Op.Mul(a, i), "mul", "float32", "int32");
        Fails(() => Op.Relu(i), "relu", "int32");
        Fails(() => Op.Where(a, a, a), "where", "bool");
        using var bo = Tensor.Zeros(new Shape(3), DType.Bool);
        Fails(() => Op.Add(bo, bo), "add", "bool");
    }

    [Fact]
    public void Bad_axes_and_k()
    {
        using var x = Tensor.Zeros(new Shape(2, 3));
        Fails(() => Op.Softmax(x, 2), "softmax", "axis 2");
        Fails(() => Op.Sum(x, [0, -2]), "sum", "repeated");
        Fails(() => Op.ArgMax(x, -3), "argmax");
        Fails(() => Op.TopK(x, 4, 1).Values, "topk", "k=4", "[2, 3]");
        using var e = Tensor.Zeros(new Shape(2, 0));
        Fails(() => Op.Max(e, [1]), "max", "[2, 0]");
    }

    [Fact]
    public void Bad_indices()
    {
        using var x = Tensor.Zeros(new Shape(2, 3));
        using var idx = Tensor.FromArray(new long[] { 0, 1, 5, 0, 1, 2 }, 2, 3);
        Fails(() => Op.Gather(x, 1, idx), "gather", "index 5");
        using var f = Tensor.Zeros(new Shape(2));
        Fails(() => Op.IndexSelect(x, 0, f), "index_select", "float32");
        using var big = Tensor.FromArray(new long[] { 0, 0, 0, 0 }, 1, 4);
        Fails(() => Op.Gather(x, 0, big), "gather", "[1, 4]", "[2, 3]");
    }

    [Fact]
    public void Integer_arithmetic_errors()
    {
        using var a = Tensor.FromArray(new[] { 2, 3 }, 2);
        using var z = Tensor.FromArray(new[] { 1, 0 }, 2);
        using var n = Tensor.FromArray(new[] { 1, -1 }, 2);
        Fails(() => Op.Div(a, z), "div", "zero");
        Fails(() => Op.Pow(a, n), "pow", "negative");
    }

    [Fact]
    public void Bad_pooling_and_resize_geometry()
    {
        using var x = Tensor.Zeros(new Shape(1, 1, 3, 3));
        Fails(() => Op.MaxPool2d(x, Pool2dParams.Square(5, 1)), "max_pool2d", "[1, 1, 3, 3]");
        Fails(() => Op.AvgPool2d(x, Pool2dParams.Square(2, 1, 2)), "avg_pool2d", "padding");
        using var v = Tensor.Zeros(new Shape(3, 3));
        Fails(() => Op.MaxPool2d(v, Pool2dParams.Square(2, 2)), "max_pool2d", "4-D", "[3, 3]");
        Fails(() => Op.Resize(x, 0, 4, ResizeMode.Bilinear), "interpolate_bilinear", "0x4");
    }
}
