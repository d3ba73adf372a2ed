using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Models;
using Osprey.Engine;
using Osprey.Engine.Graph;
using Osprey.Engine.Passes;
using Osprey.Engine.Runtime;
using Osprey.Engine.Tracing;
using Osprey.Tests.Support;
using Xunit.Abstractions;

namespace Osprey.Tests.Engine;

/// <summary>
/// <see cref="PadInputChannels"/>: the image input padded to a multiple of 4 or 8 channels and the first convolution given
/// zero filters leaves the heads unchanged (CPU, float32, formula weights, padded channels zero) against the unpadded
/// engine and the model's eager forward; the pass leaves inputs read by anything but convolutions alone.
/// </summary>
[Collection(MemoryCountersCollection.MemoryCounters)]
public class PadInputChannelsTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("ssd300_vgg16", 300, 300, 8)]
    [InlineData("retinanet_resnet18_fpn", 96, 128, 4)]
    [InlineData("retinanet_resnet18_fpn", 64, 64, 8)]
    public void Padded_engine_matches_the_unpadded_one_and_eager_forward(string arch, int h, int w, int multiple)
    {
        var a = Architectures.Get(arch);
        using var probe = a.Create();
        using var weights = FormulaWeights.StateDict(probe.Parameters.Expected);
        var plain = GraphTracer.TraceDetector(a, weights, "formula", 1, h, w);
        EngineBuilder.Optimize(plain);
        var padded = GraphTracer.TraceDetector(a, weights, "formula", 1, h, w);
        var reports = EngineBuilder.Optimize(padded, new BuildOptions(InputChannelMultiple: multiple));
        Assert.Contains(reports, r => r.Pass == "pad-input-channels" && r.Changed);
        var input = padded.Inputs.Single(v => v.Name == "images");
        Assert.Equal(new Shape(1, multiple, h, w), input.Shape);
        var convs = padded.Uses()[input];
        Assert.NotEmpty(convs);
        foreach (var (conv, _) in convs)
        {
            Assert.Equal(OpKind.Conv2d, conv.Kind);
            Assert.Equal(multiple, conv.Inputs[1].Shape[1]);
            output.WriteLine($"{conv.Name}: weight {conv.Inputs[1].Shape} {conv.Inputs[1].Format}");
        }

        using var model = a.Create();
        model.Load(weights, "formula", Device.Cpu, MemoryFormat.ChannelsLast);
        var values = Formula.Values("engine-input", 3L * h * w);
        using var x0 = Tensor.FromSpan<float>(values, new Shape(1, 3, h, w));
        using var x = Op.Contiguous(x0, MemoryFormat.ChannelsLast);
        using var heads = model.Forward(x);

        using var plainExec = new Executor(plain, BackendRegistry.Cpu);
        Op.CopyInto(x, plainExec.Input("images"));
        plainExec.Run();
        using var exec = new Executor(padded, BackendRegistry.Cpu);
        var images = exec.Input("images");
        BackendRegistry.Cpu.Fill(images, 0);
        using (var rgb = images.Slice(1, 0, 3)) Op.CopyInto(x, rgb);
        exec.Run();
        foreach (string o in new[] { "class_logits", "box_regression" })
        {
            Compare(o == "class_logits" ? heads.ClassLogits : heads.BoxRegression, exec.Output(o), $"{o} vs eager");
            Compare(plainExec.Output(o), exec.Output(o), $"{o} vs unpadded engine");
        }
    }

    [Fact]
    public void Inputs_read_by_other_ops_and_aligned_inputs_are_left_alone()
    {
        // an input read by a unary op (not a convolution) stays 3 channels
        var g = new ComputeGraph();
        var x = g.AddInput("images", new Shape(1, 3, 5, 5), DType.Float32, MemoryFormat.ChannelsLast);
        var relu = g.AddNode(OpKind.Unary, new UnaryAttrs(new UnaryOp(UnaryKind.Relu)), [x], x.Shape, DType.Float32, MemoryFormat.ChannelsLast, "relu");
        g.Outputs.Add(relu.Output);
        Assert.False(new PadInputChannels(8).Run(g));
        Assert.Equal(3, x.Shape[1]);

        // an input already a multiple of the padding is left as it is
        var g2 = new ComputeGraph();
        var x2 = g2.AddInput("images", new Shape(1, 8, 5, 5), DType.Float32, MemoryFormat.ChannelsLast);
        var wv = new float[4 * 8 * 9];
        var wt = g2.AddConstant("w", new Shape(4, 8, 3, 3), DType.Float32, MemoryFormat.Contiguous, System.Runtime.InteropServices.MemoryMarshal.AsBytes(wv.AsSpan()).ToArray());
        var conv = g2.AddNode(OpKind.Conv2d, new ConvAttrs(Conv2dParams.Square(1, 1), default, false, false), [x2, wt], new Shape(1, 4, 5, 5), DType.Float32, MemoryFormat.ChannelsLast, "conv");
        g2.Outputs.Add(conv.Output);
        Assert.False(new PadInputChannels(8).Run(g2));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PadInputChannels(1));
    }

    private void Compare(Tensor want, Tensor got, string what)
    {
        Assert.Equal(want.Shape, got.Shape);
        var a = want.ToArray<float>();
        var b = got.ToArray<float>();
        double maxAbs = a.Max(v => Math.Abs((double)v)), maxDiff = 0;
        for (int i = 0; i < a.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs((double)a[i] - b[i]));
        output.WriteLine($"{what}: max |diff| {maxDiff:G3} (max |value| {maxAbs:G3})");
        Assert.True(maxDiff <= 1e-5 * maxAbs + 1e-6, $"{what}: max |diff| {maxDiff} exceeds 1e-5 * {maxAbs} + 1e-6");
    }
}
