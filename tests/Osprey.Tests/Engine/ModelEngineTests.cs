using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Detection.Models;
using Osprey.Engine;
using Osprey.Engine.Graph;
using Osprey.Engine.Runtime;
using Osprey.Engine.Tracing;
using Osprey.Tests.Support;
using Xunit.Abstractions;

namespace Osprey.Tests.Engine;

/// <summary>
/// Each architecture traced on the meta device, optimised, planned and executed on the CPU against the model's own
/// eager forward pass (same formula weights, same input), in float32. Runs alone: it asserts on the process-wide allocation counter.
/// </summary>
[Collection(MemoryCountersCollection.MemoryCounters)]
public class ModelEngineTests(ITestOutputHelper output)
{
    public static TheoryData<string, int, int> Archs => new()
    {
        { "retinanet_resnet18_fpn", 96, 128 },
        { "retinanet_resnet50_fpn", 64, 96 },
        { "ssd300_vgg16", 300, 300 },
        // the other five architectures (session 3): every architecture's engine matches its eager forward
        { "retinanet_resnet34_fpn", 64, 64 },
        { "retinanet_resnet101_fpn", 64, 64 },
        { "retinanet_resnet152_fpn", 64, 64 },
        { "retinanet_mobilenetv2_fpn", 128, 128 },
        { "ssd300_resnet50", 300, 300 },
    };

    [Theory]
    [MemberData(nameof(Archs))]
    public void Optimised_engine_matches_eager_forward(string arch, int h, int w)
    {
        var a = Architectures.Get(arch);
        using var probe = a.Create();
        using var weights = FormulaWeights.StateDict(probe.Parameters.Expected);
        var graph = GraphTracer.TraceDetector(a, weights, "formula", 1, h, w);
        int traced = graph.Nodes.Count;
        var reports = EngineBuilder.Optimize(graph);
        foreach (var r in reports) output.WriteLine($"{r.Pass}: {r.NodesBefore} -> {r.NodesAfter} nodes ({r.Time.TotalMilliseconds:F0} ms)");
        // NVIDIA's SSD300 flattens its heads channel-major ([N, 4, A*H*W] from [N, A*4, H, W]): from an NHWC convolution output
        // that is a real transpose, so its copies stay (one per head); every other architecture's flatten is a view
        int copies = graph.Nodes.Count(n => n.Kind == OpKind.Copy);
        output.WriteLine($"{copies} copy nodes after the passes");
        if (a.Family == DetectorFamily.NvidiaSsd) Assert.True(copies <= 12, $"{copies} copies (at most one per head output expected)");
        else Assert.Equal(0, copies);
        Assert.True(graph.Nodes.Count < traced, $"{traced} traced nodes, {graph.Nodes.Count} after passes");
        // PadConvChannels: every head convolution with A*K channels (RetinaNet 9*91, 9*4; SSD 4*91, 6*91) is padded to
        // a multiple of 8, the flatten (or NVIDIA SSD's transposing copy) reading only the real channels
        var unpadded = graph.Nodes.Where(n => n.Kind == OpKind.Conv2d && n.Output.Shape[1] % 8 != 0).Select(n => $"{n.Name} {n.Output.Shape}").ToList();
        output.WriteLine($"convolutions with channels not a multiple of 8: {unpadded.Count} {string.Join("; ", unpadded)}");
        Assert.Empty(unpadded);
        Assert.Contains(reports, r => r.Pass == "pad-conv-channels-8" && r.Changed);

        using var model = a.Create();
        model.Load(weights, "formula", Device.Cpu, MemoryFormat.ChannelsLast);
        var input = Formula.Values("engine-input", 3L * h * w);
        using var x0 = Tensor.FromSpan<float>(input, new Shape(1, 3, h, w));
        using var x = Osprey.Core.Ops.Op.Contiguous(x0, MemoryFormat.ChannelsLast);
        using var heads = model.Forward(x);

        using var exec = new Executor(graph, BackendRegistry.Cpu);
        Osprey.Core.Ops.Op.CopyInto(x, exec.Input("images"));
        long allocations = BackendRegistry.Cpu.Memory.TotalAllocations;
        exec.Run();
        Assert.Equal(allocations, BackendRegistry.Cpu.Memory.TotalAllocations);
        var plan = exec.Plan;
        output.WriteLine($"{arch} {h}x{w}: {graph.Nodes.Count} nodes, arena {plan.ArenaBytes:N0} B, naive {plan.NaiveBytes:N0} B ({(double)plan.ArenaBytes / plan.NaiveBytes:P1}), weights {plan.WeightBytes:N0} B");
        Compare(heads.ClassLogits, exec.Output("class_logits"), "class_logits");
        Compare(heads.BoxRegression, exec.Output("box_regression"), "box_regression");

        // a second run on the same loaded input (what a CUDA-graph replay after the eager warm-up does) gives the same
        // outputs: the plan never lets a step write over the input
        exec.Run();
        Compare(heads.ClassLogits, exec.Output("class_logits"), "class_logits (second run)");
        Compare(heads.BoxRegression, exec.Output("box_regression"), "box_regression (second run)");
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
