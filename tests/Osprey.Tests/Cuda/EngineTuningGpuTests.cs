using System.Text.RegularExpressions;
using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Detection.Models;
using Osprey.Engine;
using Osprey.Engine.Graph;
using Osprey.Engine.Runtime;
using Osprey.Engine.Serialization;
using Osprey.Engine.Tuning;
using Osprey.Tests.Support;
using Xunit.Abstractions;

namespace Osprey.Tests.Cuda;

/// <summary>
/// Convolution algorithms measured at build time and stored in the engine (format v2): every convolution gets a choice;
/// the choices survive the file; an executor built from the file pins them (the backend's plans then report exactly the
/// stored choices: nothing re-measured) and computes the same heads as the measuring run; a damaged choice whose checksum
/// is valid gives an <see cref="EngineFormatException"/> naming the node, never a native fault.
/// </summary>
[Collection(GpuCollection.Name)]
public class EngineTuningGpuTests(ITestOutputHelper output)
{
    private static ComputeGraph Graph(string arch, int size, DType precision)
    {
        var a = Architectures.Get(arch);
        using var probe = a.Create();
        using var weights = FormulaWeights.StateDict(probe.Parameters.Expected);
        return DetectorEngines.Build(new DetectorEngineSpec(arch, 2, size, size, precision, a.PostProcess), weights, "formula");
    }

    private static float[] Head(Executor e)
    {
        using var f = Op.Cast(e.Output("class_logits"), DType.Float32);
        return f.ToArray<float>();
    }

    private static void Fill(Executor e)
    {
        var input = e.Input("images");
        var v = new float[input.Numel];
        for (int i = 0; i < v.Length; i++) v[i] = MathF.Sin(0.37f * i) * 1.5f;
        using var src = Tensor.FromSpan<float>(v, input.Shape, input.Device);
        using var nhwc = Op.Contiguous(src, MemoryFormat.ChannelsLast);
        Op.CopyInto(nhwc, input);
    }

    [GpuTheory]
    [InlineData("retinanet_resnet18_fpn", 128, "fp16")]
    [InlineData("ssd300_vgg16", 300, "fp16")]
    [InlineData("retinanet_resnet18_fpn", 128, "fp32")]
    public void Stored_algorithms_round_trip_and_are_used_without_measuring(string arch, int size, string precision)
    {
        var backend = (CudaBackend)BackendRegistry.Get(Gpu.Device);
        var graph = Graph(arch, size, precision == "fp16" ? DType.Float16 : DType.Float32);
        var report = ConvAlgorithms.Measure(graph, backend);
        int convs = graph.Nodes.Count(n => n.Kind == OpKind.Conv2d);
        Assert.Equal(convs, report.Convolutions);
        Assert.All(graph.Nodes.Where(n => n.Kind == OpKind.Conv2d), n => Assert.NotNull(n.Algorithm));
        output.WriteLine($"{arch} {precision}: {report}; e.g. {graph.Nodes.First(n => n.Algorithm is not null).Algorithm}");

        var target = EngineDetector.TargetFor(Gpu.Device);
        var (_, loaded) = EngineReader.Read(EngineWriter.Write(graph, target), target);
        Assert.Equal(graph.Nodes.Select(n => n.Algorithm), loaded.Nodes.Select(n => n.Algorithm));

        float[] reference;
        using (var measured = new Executor(graph, backend))
        {
            Fill(measured);
            measured.Run();
            reference = Head(measured);
        }
        using var exec = new Executor(loaded, backend);
        Assert.Equal(report.MaxWorkspaceBytes, exec.WorkspaceBytes);
        // the backend's plans are now the stored ones
        for (int i = 0; i < exec.StepNodes.Count; i++)
        {
            if (exec.StepAt(i) is not ConvStep step) continue;
            var (x, w, p, e, y) = step.Operands;
            Assert.Equal(exec.StepNodes[i].Algorithm, backend.ConvAlgorithm(x, w, p, e, y)?.Choice);
        }
        Fill(exec);
        exec.Run();
        var got = Head(exec);
        double max = reference.Max(MathF.Abs), diff = 0;
        for (int i = 0; i < got.Length; i++) diff = Math.Max(diff, Math.Abs(got[i] - reference[i]));
        output.WriteLine($"heads max |diff| {diff} of max |value| {max}");
        Assert.True(diff <= 1e-6 * Math.Max(max, 1), $"pinned run differs from the measuring run by {diff} (max |value| {max})");
    }

    [GpuTheory]
    [InlineData("index", "plan 4000 of heuristic mode")]
    [InlineData("cudnn", "measured with cuDNN 1,")]
    [InlineData("api", "unknown API 'gr4ph'")]
    public void A_damaged_stored_algorithm_is_a_clear_error(string damage, string why)
    {
        var backend = (CudaBackend)BackendRegistry.Get(Gpu.Device);
        var graph = Graph("retinanet_resnet18_fpn", 64, DType.Float16);
        ConvAlgorithms.Measure(graph, backend);
        var node = graph.Nodes.First(n => n.Algorithm is not null && n.Algorithm.Contains(";graph;", StringComparison.Ordinal));
        string stored = node.Algorithm!;
        node.Algorithm = damage switch
        {
            "index" => Regex.Replace(stored, "index=[0-9]+", "index=4000"),
            "cudnn" => Regex.Replace(stored, "cudnn=[0-9]+", "cudnn=1"),
            _ => stored.Replace(";graph;", ";gr4ph;", StringComparison.Ordinal),
        };
        var target = EngineDetector.TargetFor(Gpu.Device);
        var (_, loaded) = EngineReader.Read(EngineWriter.Write(graph, target), target);
        var e = Assert.Throws<EngineFormatException>(() => new Executor(loaded, backend));
        output.WriteLine(e.Message);
        Assert.Contains(node.Name, e.Message, StringComparison.Ordinal);
        Assert.Contains("stored convolution algorithm", e.Message, StringComparison.Ordinal);
        Assert.Contains(why, e.Message, StringComparison.Ordinal);
    }
}
