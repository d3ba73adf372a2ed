using System.Diagnostics;
using System.Globalization;
using System.Text;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Cuda.Runtime;
using Osprey.Engine.Graph;
using Osprey.Engine.Runtime;

namespace Osprey.Engine.Tuning;

/// <summary>One node's median time over the profiled runs, and its arithmetic (multiply-add = 2 FLOPs; 0 for non-GEMM nodes).</summary>
public sealed record NodeTime(string Name, OpKind Kind, string Detail, double Ms, double Flops)
{
    /// <summary>Achieved TFLOP/s (0 for nodes without GEMM arithmetic).</summary>
    public double Tflops => Ms > 0 && Flops > 0 ? Flops / (Ms * 1e9) : 0;
}

/// <summary>The per-node profile of one engine run: nodes in execution order and the summed median total.</summary>
public sealed record EngineProfile(IReadOnlyList<NodeTime> Nodes, int Runs, double WholeRunMs)
{
    public double SumMs => Nodes.Sum(n => n.Ms);

    /// <summary>Per op kind: node count, summed time, summed FLOPs.</summary>
    public IReadOnlyList<(OpKind Kind, int Count, double Ms, double Flops)> ByKind() =>
        [.. Nodes.GroupBy(n => n.Kind).Select(g => (g.Key, g.Count(), g.Sum(n => n.Ms), g.Sum(n => n.Flops))).OrderByDescending(t => t.Item3)];

    /// <summary>A Markdown report: totals, per op kind, and the <paramref name="top"/> slowest nodes, with the share of <paramref name="peakTflops"/>.</summary>
    public string Format(string title, double peakTflops, int top = 25)
    {
        var sb = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        double sum = SumMs;
        sb.AppendLine(c, $"### {title}");
        sb.AppendLine(c, $"{Nodes.Count} steps, median of {Runs} runs: per-node sum {sum:F3} ms (events between every node), whole run {WholeRunMs:F3} ms (one event pair). Peak used: {peakTflops:F0} TFLOP/s.");
        sb.AppendLine();
        sb.AppendLine("| op kind | nodes | ms | share | TFLOP/s | % of peak |");
        sb.AppendLine("|---|---|---|---|---|---|");
        foreach (var (kind, count, ms, flops) in ByKind())
        {
            double tf = flops > 0 && ms > 0 ? flops / (ms * 1e9) : 0;
            sb.AppendLine(c, $"| {kind} | {count} | {ms:F3} | {100 * ms / sum:F1} % | {(tf > 0 ? tf.ToString("F1", c) : "")} | {(tf > 0 ? (100 * tf / peakTflops).ToString("F1", c) + " %" : "")} |");
        }
        sb.AppendLine();
        sb.AppendLine(c, $"Slowest {Math.Min(top, Nodes.Count)} nodes:");
        sb.AppendLine();
        sb.AppendLine("| node | kind | detail | ms | share | TFLOP/s | % of peak |");
        sb.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var n in Nodes.OrderByDescending(n => n.Ms).Take(top))
            sb.AppendLine(c, $"| {n.Name} | {n.Kind} | {n.Detail} | {n.Ms:F3} | {100 * n.Ms / sum:F1} % | {(n.Tflops > 0 ? n.Tflops.ToString("F1", c) : "")} | {(n.Tflops > 0 ? (100 * n.Tflops / peakTflops).ToString("F1", c) + " %" : "")} |");
        return sb.ToString();
    }
}

/// <summary>
/// Times every step of an engine run. CUDA: an event recorded before each step and after the last, one synchronisation per
/// run (the events add a little gap between kernels, so the per-node sum slightly exceeds a plain run; the whole-run time
/// is measured separately). CPU: a stopwatch around each step (CPU kernels are synchronous). Medians over the runs.
/// </summary>
public static class EngineProfiler
{
    /// <summary>Dense fp16 tensor-core peak of the H100 SXM5 (989.4 TFLOP/s without sparsity, NVIDIA H100 datasheet).</summary>
    public const double H100SxmFp16DenseTflops = 989.4;

    public static EngineProfile Profile(Executor exec, int runs = 20, int warmup = 3)
    {
        ArgumentNullException.ThrowIfNull(exec);
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        var backend = exec.Backend;
        for (int i = 0; i < warmup; i++) exec.Run();
        backend.Synchronize();
        int steps = exec.StepNodes.Count;
        var times = new double[steps][];
        for (int s = 0; s < steps; s++) times[s] = new double[runs];
        var whole = new double[runs];
        if (backend is CudaBackend cuda) ProfileCuda(exec, cuda, times, whole);
        else ProfileHost(exec, backend, times, whole);
        var nodes = new NodeTime[steps];
        for (int s = 0; s < steps; s++)
        {
            var n = exec.StepNodes[s];
            nodes[s] = new NodeTime(n.Name, n.Kind, Describe(n), Median(times[s]), Flops(n));
        }
        return new EngineProfile(nodes, runs, Median(whole));
    }

    private static void ProfileCuda(Executor exec, CudaBackend cuda, double[][] times, double[] whole)
    {
        int steps = times.Length;
        var events = new CudaEvent[steps + 1];
        try
        {
            for (int i = 0; i < events.Length; i++) events[i] = new CudaEvent();
            for (int r = 0; r < whole.Length; r++)
            {
                events[0].Record(cuda.Stream);
                exec.Run();
                events[steps].Record(cuda.Stream);
                events[steps].Synchronize();
                whole[r] = CudaEvent.Elapsed(events[0], events[steps]);

                for (int s = 0; s < steps; s++)
                {
                    events[s].Record(cuda.Stream);
                    exec.RunStep(s);
                }
                events[steps].Record(cuda.Stream);
                events[steps].Synchronize();
                for (int s = 0; s < steps; s++) times[s][r] = CudaEvent.Elapsed(events[s], events[s + 1]);
            }
        }
        finally
        {
            foreach (var e in events) e?.Dispose();
        }
    }

    private static void ProfileHost(Executor exec, IBackend backend, double[][] times, double[] whole)
    {
        var clock = new Stopwatch();
        for (int r = 0; r < whole.Length; r++)
        {
            clock.Restart();
            exec.Run();
            backend.Synchronize();
            whole[r] = clock.Elapsed.TotalMilliseconds;
            for (int s = 0; s < times.Length; s++)
            {
                clock.Restart();
                exec.RunStep(s);
                backend.Synchronize();
                times[s][r] = clock.Elapsed.TotalMilliseconds;
            }
        }
    }

    private static double Median(double[] v)
    {
        var a = (double[])v.Clone();
        Array.Sort(a);
        return a.Length % 2 == 1 ? a[a.Length / 2] : 0.5 * (a[a.Length / 2 - 1] + a[a.Length / 2]);
    }

    /// <summary>Multiply-add count x 2 of a convolution (N*OH*OW*O*(C/groups)*KH*KW) or a matrix product; 0 otherwise.</summary>
    public static double Flops(Node n)
    {
        if (n.Kind == OpKind.Conv2d)
        {
            var y = n.Output.Shape;
            var w = n.Inputs[1].Shape;   // [O, C/groups, KH, KW]
            return 2.0 * y[0] * y[1] * y[2] * y[3] * w[1] * w[2] * w[3];
        }
        if (n.Kind == OpKind.MatMul)
        {
            var a = n.AttrsAs<MatMulAttrs>();
            var ya = n.Output.Shape;
            var sa = n.Inputs[0].Shape;
            int k = a.TransposeA ? sa[^2] : sa[^1];
            return 2.0 * ya.Numel * k;
        }
        return 0;
    }

    private static string Describe(Node n)
    {
        var y = n.Output;
        string shape = $"{y.DType.Name()}[{string.Join("x", y.Shape.ToArray())}]";
        if (n.Kind == OpKind.Conv2d)
        {
            var a = n.AttrsAs<ConvAttrs>();
            var w = n.Inputs[1].Shape;
            var x = n.Inputs[0].Shape;
            return $"{x[1]}->{w[0]} k{w[2]}x{w[3]} s{a.Geometry.StrideH} {shape}";
        }
        if (n.Kind == OpKind.Binary) return $"{n.AttrsAs<BinaryAttrs>().Op} {shape}";
        if (n.Kind == OpKind.Unary) return $"{n.AttrsAs<UnaryAttrs>().Op.Kind} {shape}";
        if (n.Kind == OpKind.Cast) return $"{n.Inputs[0].DType.Name()}->{shape}";
        return shape;
    }
}
