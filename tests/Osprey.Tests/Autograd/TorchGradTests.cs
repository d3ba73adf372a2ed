using System.Text.Json;
using Osprey.Core.Autograd;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Models;
using Osprey.Tests.Support;

namespace Osprey.Tests.Autograd;

/// <summary>Gradients against PyTorch 1.13's, from fixtures written by tools/golden_autograd.py.</summary>
public class TorchGradTests
{
    public static TheoryData<string> Cases() => Golden.Names("autograd");

    /// <summary>Every case: the op (or small composite) on generated inputs, back-propagating a generated output gradient.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Op_gradients_match_torch(string name)
    {
        var c = Golden.Get("autograd", name);
        int n = c.Inputs - 1;
        var inputs = Enumerable.Range(0, n).Select(c.Input).ToArray();
        using var gy = c.Input(n);
        var parameters = inputs.Select((t, i) => new Parameter(t, $"input{i}")).ToArray();
        using (var tape = new GradTape(parameters))
        {
            using var y = Forward(c, inputs);
            tape.Backward(y, gy);
        }
        for (int i = 0; i < n; i++)
        {
            using var expected = c.Output(i);
            Assert.NotNull(parameters[i].Grad);
            Golden.AssertMatches(expected, parameters[i].Grad!, 2e-5, 1e-3, $"{name}: gradient of input {i}");
            parameters[i].Dispose();
        }
    }

    private static Tensor Layout(Tensor x, bool nhwc) => Op.Contiguous(x, nhwc ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous);

    private static Tensor Forward(Golden.Case c, Tensor[] t)
    {
        using var scope = new TensorScope();
        Tensor y;
        switch (c.Str("op"))
        {
            case "conv2d":
                {
                    var p = Conv2dParams.Square(c.Int("stride"), c.Int("pad"), c.Int("dilation"), c.Int("groups"));
                    y = Op.Conv2d(Layout(t[0], c.Bool("nhwc")), t[1], p, new Epilogue(t[2], Layout(t[3], c.Bool("nhwc")), UnaryKind.Relu));
                    break;
                }
            case "max_pool2d":
                y = Op.MaxPool2d(Layout(t[0], c.Bool("nhwc")), Pool2dParams.Square(c.Int("k"), c.Int("s"), c.Int("p"), c.Bool("ceil")));
                break;
            case "avg_pool2d":
                y = Op.AvgPool2d(Layout(t[0], c.Bool("nhwc")), Pool2dParams.Square(c.Int("k"), c.Int("s"), c.Int("p"), c.Bool("ceil"), c.Bool("include_pad")));
                break;
            case "interpolate":
                y = Op.Resize(Layout(t[0], c.Bool("nhwc")), c.Int("oh"), c.Int("ow"), c.Str("mode") == "nearest" ? ResizeMode.Nearest : ResizeMode.Bilinear);
                break;
            case "softmax": y = Op.Softmax(t[0], c.Int("axis")); break;
            case "log_softmax": y = Op.LogSoftmax(t[0], c.Int("axis")); break;
            case "linear_relu": y = Op.MatMul(t[0], t[1], transposeB: true, epilogue: new Epilogue(t[2], null, UnaryKind.Relu)); break;
            case "l2norm":
                {
                    var norm = Op.Sqrt(Op.Sum(Op.Mul(t[0], t[0]), [1], keepDims: true));
                    var n = Op.Div(t[0], Op.Binary(BinaryOp.Max, norm, 1e-12));
                    y = Op.Mul(t[1].Reshape(1, -1, 1, 1), n);
                    break;
                }
            case "unary": y = Op.Unary(Enum.Parse<UnaryKind>(c.Str("kind")), t[0]); break;
            case "div": y = Op.Div(t[0], t[1]); break;
            case "focal_like":
                {
                    var s = Op.Sigmoid(t[0]);
                    var ce = Op.Neg(Op.Log(s));
                    y = Op.Mean(Op.Mul(Op.Binary(BinaryOp.Pow, s, 2.0), ce), [0]);
                    break;
                }
            default: throw new InvalidDataException($"autograd fixture: unknown op {c.Str("op")}");
        }
        return scope.Keep(y);
    }

    /// <summary>
    /// The whole RetinaNet-R18-FPN (formula weights, frozen batch norm folded at load) on a 2x3x64x80 formula image with
    /// loss = sum(cls_logits^2) + sum(bbox_regression^2): the loss and the gradient of every convolution's (folded)
    /// weight and bias match torch's: sums and absolute sums within 1e-3 relative, 32 sampled values within
    /// 1e-3 of the tensor's rms plus 1e-3 relative.
    /// </summary>
    [Fact]
    public void RetinaNet_resnet18_fpn_parameter_gradients_match_torch()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "autograd", "retinanet_resnet18_fpn.json")));
        var f = doc.RootElement;
        using var model = new RetinaNet("retinanet_resnet18_fpn", 18, f.GetProperty("classes").GetInt32());
        using (var weights = FormulaWeights.StateDict(model.Parameters.Expected)) model.Load(weights, "formula", Device.Cpu);
        var shape = new Shape(f.GetProperty("image_shape").EnumerateArray().Select(v => v.GetInt32()).ToArray());
        using var image = Tensor.FromSpan<float>(Formula.Values(f.GetProperty("image_formula").GetString()!, shape.Numel), shape);

        var convs = model.Parameters.Layers;
        var parameters = convs.SelectMany(c => new[] { new Parameter(c.Weight!, c.Name + ".weight", ownsValue: false), new Parameter(c.Bias!, c.Name + ".bias", ownsValue: false) }).ToArray();
        float loss;
        using (var tape = new GradTape(parameters))
        {
            using var heads = model.Forward(image);
            using var lc = SumOfSquares(heads.ClassLogits);
            using var lr = SumOfSquares(heads.BoxRegression);
            using var l = Op.Add(lc, lr);
            loss = l.Item<float>();
            tape.Backward(l);
            Assert.Equal(0, tape.SavedTensorCount);
        }
        double expectedLoss = f.GetProperty("loss").GetDouble();
        Assert.True(Math.Abs(loss - expectedLoss) <= 1e-4 * expectedLoss, $"loss {loss}, torch {expectedLoss}");

        var byName = parameters.ToDictionary(p => p.Name);
        int checkedTensors = 0;
        foreach (var conv in f.GetProperty("convs").EnumerateArray())
        {
            string name = conv.GetProperty("name").GetString()!;
            CheckStats(byName[name + ".weight"], conv.GetProperty("weight"));
            CheckStats(byName[name + ".bias"], conv.GetProperty("bias"));
            checkedTensors += 2;
        }
        Assert.Equal(parameters.Length, checkedTensors);
        foreach (var p in parameters) p.Dispose();
    }

    private static Tensor SumOfSquares(Tensor x)
    {
        using var sq = Op.Mul(x, x);
        return Op.Sum(sq);
    }

    private static void CheckStats(Parameter p, JsonElement e)
    {
        Assert.NotNull(p.Grad);
        var g = p.Grad!.ToArray<float>();
        Assert.Equal(e.GetProperty("shape").EnumerateArray().Select(v => v.GetInt32()).ToArray(), p.Grad.Shape.ToArray());
        double sum = 0, abs = 0;
        foreach (float v in g) { sum += v; abs += Math.Abs(v); }
        double eSum = e.GetProperty("sum").GetDouble(), eAbs = e.GetProperty("abs_sum").GetDouble(), rms = e.GetProperty("rms").GetDouble();
        Assert.True(Math.Abs(abs - eAbs) <= 1e-3 * eAbs, $"{p.Name}: gradient abs sum {abs}, torch {eAbs}");
        Assert.True(Math.Abs(sum - eSum) <= 1e-3 * eAbs, $"{p.Name}: gradient sum {sum}, torch {eSum} (abs sum {eAbs})");
        var idx = e.GetProperty("sample_index").EnumerateArray().Select(v => v.GetInt32()).ToArray();
        var sample = e.GetProperty("sample").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        for (int i = 0; i < idx.Length; i++)
        {
            double a = g[idx[i]], x = sample[i];
            Assert.True(Math.Abs(a - x) <= 1e-3 * rms + 1e-3 * Math.Abs(x), $"{p.Name}[{idx[i]}]: gradient {a}, torch {x} (rms {rms})");
        }
    }
}
