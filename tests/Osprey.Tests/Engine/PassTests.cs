using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Engine;
using Osprey.Engine.Graph;
using Osprey.Engine.Passes;
using Osprey.Engine.Runtime;
using Osprey.Engine.Tracing;
using Xunit.Abstractions;

namespace Osprey.Tests.Engine;

public class PassTests(ITestOutputHelper output)
{
    private static (float[] Heads, float[] Features) Eager()
    {
        using var x = SmallNet.Input();
        var (a, b) = SmallNet.Forward(x, Device.Cpu);
        using (a) using (b) return (a.ToArray<float>(), b.ToArray<float>());
    }

    internal static (float[] Heads, float[] Features) Run(ComputeGraph g)
    {
        using var exec = new Executor(g, BackendRegistry.Cpu);
        using var x = SmallNet.Input();
        Op.CopyInto(x, exec.Input("x"));
        exec.Run();
        return (exec.Output("heads").ToArray<float>(), exec.Output("features").ToArray<float>());
    }

    private static void Near(float[] want, float[] got, double tol, string what)
    {
        Assert.Equal(want.Length, got.Length);
        for (int i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(want[i] - got[i]) <= tol * (1 + Math.Abs(want[i])), $"{what}[{i}]: {got[i]} vs {want[i]}");
    }

    [Fact]
    public void Traced_graph_runs_unoptimised_and_matches_eager_exactly()
    {
        var g = SmallNet.Trace();
        Assert.Contains(g.Nodes, n => n.Kind == OpKind.Copy);
        var (h, f) = Run(g);
        var (wh, wf) = Eager();
        Assert.Equal(wh, h);
        Assert.Equal(wf, f);
    }

    [Fact]
    public void Standard_passes_fold_fuse_and_remove_copies_and_still_match()
    {
        var g = SmallNet.Trace();
        var reports = EngineBuilder.Optimize(g);
        output.WriteLine(GraphDump.Format(g));
        var convs = g.Nodes.Where(n => n.Kind == OpKind.Conv2d).ToList();
        Assert.Equal(3, convs.Count);
        var a0 = convs[0].AttrsAs<ConvAttrs>();
        Assert.True(a0.HasBias);                                  // batch norm folded into weight and bias
        Assert.Equal(UnaryKind.Relu, a0.Activation.Kind);         // relu fused
        var a1 = convs[1].AttrsAs<ConvAttrs>();
        Assert.True(a1.HasResidual);                              // + y fused as residual
        Assert.Equal(UnaryKind.Relu, a1.Activation.Kind);
        Assert.DoesNotContain(g.Nodes, n => n.Kind == OpKind.Copy);   // flatten copies became views
        Assert.DoesNotContain(g.Nodes, n => n.Kind == OpKind.Unary && n.AttrsAs<UnaryAttrs>().Op.Kind == UnaryKind.Relu);
        Assert.Contains(reports, r => r.Pass == "fold-batch-norm" && r.Changed);
        var (h, f) = Run(g);
        var (wh, wf) = Eager();
        Near(wh, h, 1e-5, "heads");
        Near(wf, f, 1e-5, "features");
        Assert.Contains("+residual relu", GraphDump.Format(g), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(DType.Float16, 2e-2)]
    [InlineData(DType.BFloat16, 8e-2)]
    public void Half_precision_keeps_reductions_and_outputs_in_float32(DType dtype, double tol)
    {
        var g = SmallNet.Trace();
        EngineBuilder.Optimize(g, new BuildOptions(dtype));
        output.WriteLine(GraphDump.Format(g));
        var reduce = g.Nodes.Single(n => n.Kind == OpKind.Reduce);
        Assert.Equal(DType.Float32, reduce.Inputs[0].DType);
        Assert.Equal(DType.Float32, reduce.Inputs[0].Buffer.Producer!.Output.DType);   // x*x squared in float32
        Assert.All(g.Outputs, o => Assert.Equal(DType.Float32, o.DType));
        Assert.All(g.Nodes.Where(n => n.Kind == OpKind.Conv2d), n => Assert.Equal(dtype, n.Inputs[1].DType));
        Assert.All(g.Nodes.Where(n => n.Kind == OpKind.Conv2d), n => Assert.Equal(ValueKind.Constant, n.Inputs[1].Kind));
        var (h, f) = Run(g);
        var (wh, wf) = Eager();
        Near(wh, h, tol, "heads");
        Near(wf, f, tol, "features");
    }

    [Fact]
    public void Copy_elimination_composes_views_exactly()
    {
        // NHWC [1, 6, 2, 3] copied to NCHW, viewed as [1, 2, 3, 2, 3], permuted to [1, 2, 3, 2, 3] (h, w, a, k): that is the NHWC memory itself
        var shape = new Shape(1, 6, 2, 3);
        var composed = Layout.Compose(new Shape(1, 2, 3, 2, 3), [36, 3, 1, 18, 6], 0, shape, shape.ContiguousStrides(), shape.ChannelsLastStrides(), 0);
        Assert.NotNull(composed);
        Assert.Equal(new long[] { 36, 18, 6, 3, 1 }, composed.Value.Strides.Select((s, i) => i == 0 ? 36 : s).ToArray());
        // flattening a transposed [2, 3] (addresses 0, 2, 4, 1, 3, 5) is not a strided view of the source
        Assert.Null(Layout.Compose(new Shape(6), [1], 0, new Shape(2, 3), [3, 1], [1, 2], 0));
    }

    [Fact]
    public void Tracing_refuses_data_dependent_ops_clearly()
    {
        using var tracer = new GraphTracer();
        using var x = tracer.Input("x", new Shape(2, 5), format: MemoryFormat.Contiguous);
        var e = Assert.Throws<GraphException>(() => Op.TopK(x, 2));
        Assert.Contains("topk", e.Message, StringComparison.Ordinal);
        Assert.Throws<GraphException>(() => x.ToArray<float>());
    }

    [Fact]
    public void Validation_names_the_bad_node()
    {
        var g = SmallNet.Trace();
        var conv = g.Nodes.First(n => n.Kind == OpKind.Conv2d);
        conv.Output.Shape = new Shape(2, 8, 6, 4);
        var e = Assert.Throws<GraphException>(() => ShapeInference.Validate(g));
        Assert.Contains(conv.Name, e.Message, StringComparison.Ordinal);
    }
}
