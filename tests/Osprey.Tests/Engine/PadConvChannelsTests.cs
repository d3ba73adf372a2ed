using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Models;
using Osprey.Engine;
using Osprey.Engine.Graph;
using Osprey.Engine.Passes;
using Osprey.Engine.Serialization;
using Osprey.Engine.Tracing;
using Osprey.Tests.Support;
using Xunit.Abstractions;

namespace Osprey.Tests.Engine;

/// <summary>
/// PadConvChannels: SmallNet's head conv (8 -> 6 = 2 anchors x 3 classes, flattened NHWC to [N, H*W*2, 3] into a concat)
/// is padded to 8 zero-filled channels; the flatten becomes a split piece [N, H*W, 2, 3] of the concat; outputs unchanged.
/// </summary>
public class PadConvChannelsTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(DType.Float32)]
    [InlineData(DType.Float16)]
    [InlineData(DType.BFloat16)]
    public void Head_conv_is_padded_and_outputs_equal_the_unpadded_engine(DType precision)
    {
        var plain = SmallNet.Trace();
        EngineBuilder.Optimize(plain, new BuildOptions(precision, PadConvChannelsTo: 0));
        Assert.Contains(plain.Nodes, n => n.Kind == OpKind.Conv2d && n.Inputs[1].Shape[0] == 6);

        var g = SmallNet.Trace();
        var reports = EngineBuilder.Optimize(g, new BuildOptions(precision));
        output.WriteLine(GraphDump.Format(g));
        Assert.Contains(reports, r => r.Pass == "pad-conv-channels-8" && r.Changed);
        var convs = g.Nodes.Where(n => n.Kind == OpKind.Conv2d).ToList();
        Assert.All(convs, c => Assert.Equal(0, c.Inputs[1].Shape[0] % 8));
        var head = convs.Single(c => c.Output.Shape[1] == 8 && g.Uses()[c.Output].All(u => u.Node.Kind == OpKind.View));
        Assert.Equal(new Shape(8, 8, 1, 1), head.Inputs[1].Shape);
        // the two added filters are zero (any dtype: zero bytes), the real ones kept in the same order
        var w = head.Inputs[1].Data!;
        int row = w.Length / 8;
        Assert.All(w.AsSpan(6 * row).ToArray(), b => Assert.Equal(0, b));
        Assert.Equal(plain.Nodes.Single(c => c.Kind == OpKind.Conv2d && c.Inputs[1].Shape[0] == 6).Inputs[1].Data, w.AsSpan(0, 6 * row).ToArray());
        // the concat reads split pieces of the padded buffer: [2, H*W, 2, 3] with strides [H*W*8, 8, 3, 1], no copy
        var concat = g.Nodes.Single(n => n.Kind == OpKind.Concat);
        Assert.All(concat.Inputs, v =>
        {
            Assert.Equal(new Shape(2, SmallNet.H * SmallNet.W, 2, 3), v.Shape);
            Assert.Equal(new long[] { SmallNet.H * SmallNet.W * 8, 8, 3, 1 }, v.Strides);
            Assert.Same(head.Output, v.Buffer);
        });
        Assert.DoesNotContain(g.Nodes, n => n.Kind == OpKind.Copy);

        var (h0, f0) = PassTests.Run(plain);
        var (h, f) = PassTests.Run(g);
        Assert.Equal(h0, h);      // the real channels compute exactly as before
        Assert.Equal(f0, f);
    }

    [Fact]
    public void Padded_engine_survives_the_engine_file()
    {
        var g = SmallNet.Trace();
        EngineBuilder.Optimize(g);
        var bytes = EngineWriter.Write(g, EngineTarget.Cpu);
        var back = EngineReader.Read(bytes, EngineTarget.Cpu).Graph;
        Assert.Equal(GraphDump.Format(g), GraphDump.Format(back));
        Assert.Equal(PassTests.Run(g).Heads, PassTests.Run(back).Heads);
    }

    [Fact]
    public void Convolution_read_by_a_reader_that_needs_dense_input_is_left_alone()
    {
        // conv 3 -> 6 flattened to [1, H*W*6] (a dense view of the NHWC output) and read by a softmax: the split flatten
        // is no concat piece, so nothing is padded
        using var tracer = new GraphTracer();
        using var x = tracer.Input("x", new Shape(1, 3, 4, 5));
        using var wt = Tensor.FromSpan<float>(Formula.Values("pad-w", 6 * 3), new Shape(6, 3, 1, 1));
        using var w = Op.To(wt, tracer.Device);
        using var y = Op.Conv2d(x, w);
        using var p = y.Permute(0, 2, 3, 1);
        using var flat = p.Reshape(1, -1);
        using var s = Op.Softmax(flat, 1);
        tracer.Output("s", s);
        var g = tracer.Finish();
        EngineBuilder.Optimize(g, new BuildOptions(PadConvChannelsTo: 0));
        string before = GraphDump.Format(g);
        output.WriteLine(before);
        Assert.False(new PadConvChannels().Run(g));
        Assert.Equal(before, GraphDump.Format(g));
        // and a conv whose output is a graph output is never padded
        var g2 = SmallNet.Trace();
        EngineBuilder.Optimize(g2, new BuildOptions(PadConvChannelsTo: 0));
        var head = g2.Nodes.Single(n => n.Kind == OpKind.Conv2d && n.Inputs[1].Shape[0] == 6);
        g2.Outputs.Add(head.Output);
        Assert.False(new PadConvChannels().Run(g2));
    }

    [Fact]
    public void Concat_piece_of_the_wrong_rank_is_named()
    {
        var g = SmallNet.Trace();
        EngineBuilder.Optimize(g);
        var concat = g.Nodes.Single(n => n.Kind == OpKind.Concat);
        var piece = concat.Inputs[0];
        var buffer = piece.Buffer;
        concat.Inputs[0] = g.AddView(buffer, new Shape(2, 5, 6, 2, 3), [240, 48, 8, 3, 1], 0);
        g.Compact();
        var e = Assert.Throws<GraphException>(() => ShapeInference.Validate(g));
        Assert.Contains("rank 5", e.Message, StringComparison.Ordinal);
        Assert.Contains(concat.Name, e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => new PadConvChannels(1));
    }
}

/// <summary>Float16 detector engines keep float16 heads (the GPU decode reads them); the standard options keep float32 outputs.</summary>
public class HalfHeadsTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Fp16_detector_engine_heads_are_fp16_unless_asked(bool float32Heads)
    {
        const string arch = "retinanet_resnet18_fpn";
        var a = Architectures.Get(arch);
        using var probe = a.Create();
        using var weights = FormulaWeights.StateDict(probe.Parameters.Expected);
        var spec = new DetectorEngineSpec(arch, 1, 64, 64, DType.Float16, a.PostProcess);
        var options = float32Heads ? DetectorEngines.DetectorDefaults with { Float32Outputs = true } : null;
        var g = DetectorEngines.Build(spec, weights, "formula", options: options);
        var want = float32Heads ? DType.Float32 : DType.Float16;
        Assert.All(g.Outputs, o => Assert.Equal(want, o.DType));
        // float16 heads: the concat writes them directly, no cast node after it
        if (!float32Heads) Assert.DoesNotContain(g.Nodes, n => n.Kind == OpKind.Cast && g.Outputs.Contains(n.Output));
        Assert.All(g.Outputs, o => Assert.Equal(OpKind.Concat, o.Producer!.Kind));
        var (read, _) = DetectorEngines.ReadSpec(g, "test");
        Assert.Equal(DType.Float16, read.Precision);
    }
}
