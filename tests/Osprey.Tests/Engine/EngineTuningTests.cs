using System.Buffers.Binary;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Cuda.Dnn;
using Osprey.Detection.Boxes;
using Osprey.Engine;
using Osprey.Engine.Graph;
using Osprey.Engine.Runtime;
using Osprey.Engine.Serialization;
using Osprey.Engine.Tuning;

namespace Osprey.Tests.Engine;

/// <summary>Stored convolution algorithms (format v2), the per-node profiler and the detection agreement report, on the CPU.</summary>
public class EngineTuningTests
{
    private static ComputeGraph Optimized()
    {
        var g = SmallNet.Trace();
        EngineBuilder.Optimize(g);
        return g;
    }

    [Fact]
    public void Stored_algorithms_round_trip_through_the_file()
    {
        var g = Optimized();
        var convs = g.Nodes.Where(n => n.Kind == OpKind.Conv2d).ToList();
        Assert.NotEmpty(convs);
        for (int i = 0; i < convs.Count; i++) convs[i].Algorithm = $"cudnn=91900;graph;fused={i % 8};mode=3;index={i};ws={1024 * i}";
        var target = EngineTarget.Cpu with { Architecture = "sm_90" };
        var bytes = EngineWriter.Write(g, target);
        var (_, g2) = EngineReader.Read(bytes, target);
        Assert.Equal(g.Nodes.Select(n => n.Algorithm), g2.Nodes.Select(n => n.Algorithm));
        Assert.Equal(bytes, EngineWriter.Write(g2, target));
        Assert.Equal(2, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8)));
    }

    [Fact]
    public void An_algorithm_on_a_non_convolution_or_on_the_cpu_is_a_clear_error()
    {
        var g = Optimized();
        g.Nodes.First(n => n.Kind != OpKind.Conv2d && n.Kind != OpKind.View).Algorithm = "cudnn=1;graph;fused=0;mode=3;index=0;ws=0";
        var bytes = EngineWriter.Write(g, EngineTarget.Cpu);
        Assert.Contains("only convolutions do", Assert.Throws<EngineFormatException>(() => EngineReader.Read(bytes, EngineTarget.Cpu)).Message, StringComparison.Ordinal);

        var g2 = Optimized();
        g2.Nodes.First(n => n.Kind == OpKind.Conv2d).Algorithm = "cudnn=1;graph;fused=0;mode=3;index=0;ws=0";
        var (_, read) = EngineReader.Read(EngineWriter.Write(g2, EngineTarget.Cpu), EngineTarget.Cpu);
        var e = Assert.Throws<EngineFormatException>(() => new Executor(read, BackendRegistry.Get(Device.Cpu)));
        Assert.Contains("rebuild it for this device", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Format_version_1_files_ask_for_a_rebuild()
    {
        var bytes = EngineWriter.Write(Optimized(), EngineTarget.Cpu);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), 1);
        var e = Assert.Throws<EngineFormatException>(() => EngineReader.Read(bytes, EngineTarget.Cpu));
        Assert.Contains("version 1", e.Message, StringComparison.Ordinal);
        Assert.Contains("rebuild", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cudnn=91900;graph;fused=7;mode=3;index=2;ws=1048576")]
    [InlineData("cudnn=91900;graph;fused=0;mode=2;index=0;ws=0")]
    [InlineData("cudnn=91900;legacy;algo=1;math=1;-;ws=4096")]
    public void Conv_choice_text_round_trips(string text) => Assert.Equal(text, ConvChoice.Parse(text).ToString());

    [Theory]
    [InlineData("", "6 ';'-separated")]
    [InlineData("cudnn=91900;graph;fused=9;mode=3;index=2;ws=0", "fused 9 outside")]
    [InlineData("cudnn=91900;graph;fused=1;mode=3;index=99999;ws=0", "index 99999 outside")]
    [InlineData("cudnn=91900;graph;fused=1;mode=x;index=1;ws=0", "not a number")]
    [InlineData("cudnn=91900;winograd;fused=1;mode=3;index=1;ws=0", "unknown API")]
    [InlineData("cudnn=91900;legacy;algo=8;math=1;-;ws=0", "algo 8 outside")]
    [InlineData("cudnn=91900;legacy;algo=1;math=1;-;ws=-5", "not a number")]
    public void Damaged_conv_choice_text_is_named(string text, string why) =>
        Assert.Contains(why, Assert.Throws<FormatException>(() => ConvChoice.Parse(text)).Message, StringComparison.Ordinal);

    [Fact]
    public void Profiler_times_every_step_and_counts_convolution_flops()
    {
        var g = Optimized();
        using var exec = new Executor(g, BackendRegistry.Get(Device.Cpu));
        var p = EngineProfiler.Profile(exec, runs: 3, warmup: 1);
        Assert.Equal(exec.StepNodes.Count, p.Nodes.Count);
        Assert.All(p.Nodes, n => Assert.True(n.Ms >= 0));
        var conv = g.Nodes.First(n => n.Kind == OpKind.Conv2d);
        var y = conv.Output.Shape;
        var w = conv.Inputs[1].Shape;
        Assert.Equal(2.0 * y.Numel * w[1] * w[2] * w[3], EngineProfiler.Flops(conv));
        Assert.Equal(p.SumMs, p.ByKind().Sum(k => k.Ms), 9);
        Assert.Equal(p.Nodes.Count(n => n.Kind == OpKind.Conv2d), p.ByKind().Single(k => k.Kind == OpKind.Conv2d).Count);
        string report = p.Format("small net", EngineProfiler.H100SxmFp16DenseTflops);
        Assert.Contains("| Conv2d |", report, StringComparison.Ordinal);
        Assert.Contains("989 TFLOP/s", report, StringComparison.Ordinal);
    }

    [Fact]
    public void Agreement_matches_same_label_boxes_and_counts_the_rest_against_the_rate()
    {
        IReadOnlyList<DetectedObject>[] a =
        [
            [new(0, 0, 10, 10, 0.9f, 1), new(20, 20, 30, 30, 0.5f, 2)],
            [new(0, 0, 10, 10, 0.8f, 3)],
        ];
        IReadOnlyList<DetectedObject>[] b =
        [
            [new(0, 0, 10, 11, 0.89f, 1), new(20, 20, 30, 30, 0.5f, 5)],   // second: other label
            [new(0, 0, 10, 10, 0.8f, 3), new(50, 50, 60, 60, 0.1f, 3)],   // one extra
        ];
        var r = DetectionAgreement.Compare(a, b, 0.5);
        Assert.Equal(3, r.Reference);
        Assert.Equal(4, r.Candidate);
        Assert.Equal(2, r.Matched);
        Assert.Equal(0.5, r.MatchRate, 9);
        Assert.Equal(0.01, r.MaxScoreDiff, 5);
        Assert.Equal(1.0, r.MaxBoxDiff, 5);
        Assert.Equal(10.0 / 11.0, r.MinIou, 5);
        Assert.Throws<ArgumentException>(() => DetectionAgreement.Compare(a, b.Take(1).ToArray()));
    }
}
