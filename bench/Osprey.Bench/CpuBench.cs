using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Core.Cpu;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Bench;

public sealed record CpuBenchOptions(string? JsonPath = null, int Runs = 5, int Warmup = 2, bool Torch = true,
    string Python = "/usr/bin/python3", string TorchScript = "bench/cpu/torch_cpu.py", int[]? GemmSizes = null);

/// <summary>CPU backend vs PyTorch: SGEMM at 1024 and 4096, ResNet-50 batch 1 and 8 at 224x224, FP32, medians after warm-up.</summary>
public static class CpuBench
{
    private static readonly int[] DefaultSizes = [1024, 4096];
    private static readonly int[] Batches = [1, 8];

    public static int Run(CpuBenchOptions o)
    {
        var ci = CultureInfo.InvariantCulture;
        Console.WriteLine($"osprey cpu bench: {Environment.ProcessorCount} threads, kernel {CpuBackend.GemmKernel}, .NET {Environment.Version}, load average {LoadAverage()}");
        var gemm = new Dictionary<int, double>();
        foreach (int n in o.GemmSizes ?? DefaultSizes)
        {
            using var a = Tensor.FromArray(ResNet50.Uniform(new Random(1), n * n, 1), n, n);
            using var b = Tensor.FromArray(ResNet50.Uniform(new Random(2), n * n, 1), n, n);
            double s = Median(() => Op.MatMul(a, b).Dispose(), n <= 2048 ? o.Runs : Math.Max(3, o.Runs / 2), o.Warmup, out double cpu);
            gemm[n] = 2.0 * n * n * n / s / 1e9;
            Console.WriteLine(string.Format(ci, "  sgemm {0}: {1:F1} GFLOPS ({2:F1} GFLOP per CPU-second)", n, gemm[n], 2.0 * n * n * n / cpu / 1e9));
        }
        var resnet = new Dictionary<int, double>();
        var resnetCpu = new Dictionary<int, double>();
        using (var model = new ResNet50())
        {
            foreach (int batch in Batches)
            {
                using var xc = Tensor.FromArray(ResNet50.Uniform(new Random(3), batch * 3 * 224 * 224, 1), batch, 3, 224, 224);
                using var x = Op.Contiguous(xc, MemoryFormat.ChannelsLast);
                resnet[batch] = 1e3 * Median(() => model.Forward(x).Dispose(), o.Runs, o.Warmup, out double cpu);
                resnetCpu[batch] = 1e3 * cpu;
                Console.WriteLine(string.Format(ci, "  resnet50 batch {0}: {1:F1} ms ({2:F1} CPU-ms)", batch, resnet[batch], 1e3 * cpu));
            }
        }
        string loadAfterOsprey = LoadAverage();
        JsonNode? torch = o.Torch ? RunTorch(o) : null;
        Console.WriteLine($"load average: {loadAfterOsprey} after Osprey, {LoadAverage()} after PyTorch");
        PrintTable(gemm, resnet, resnetCpu, torch);
        if (o.JsonPath is not null)
        {
            var json = new JsonObject
            {
                ["date"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", ci),
                ["machine"] = $"{Environment.ProcessorCount}-thread {CpuModel()}",
                ["commit"] = Git("rev-parse --short HEAD"),
                ["kernel"] = CpuBackend.GemmKernel,
                ["load_average"] = LoadAverage(),
                ["osprey"] = new JsonObject
                {
                    ["sgemm_gflops"] = ToJson(gemm),
                    ["resnet50_ms"] = ToJson(resnet),
                    ["resnet50_cpu_ms"] = ToJson(resnetCpu),
                },
                ["torch"] = torch?.DeepClone(),
            };
            File.WriteAllText(o.JsonPath, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"wrote {o.JsonPath}");
        }
        return 0;
    }

    private static JsonObject ToJson(Dictionary<int, double> d)
    {
        var j = new JsonObject();
        foreach (var (k, v) in d) j[k.ToString(CultureInfo.InvariantCulture)] = Math.Round(v, 2);
        return j;
    }

    private static void PrintTable(Dictionary<int, double> gemm, Dictionary<int, double> resnet, Dictionary<int, double> resnetCpu, JsonNode? torch)
    {
        var ci = CultureInfo.InvariantCulture;
        Console.WriteLine();
        Console.WriteLine("| benchmark | Osprey | PyTorch | PyTorch channels_last | Osprey / best PyTorch |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var (n, g) in gemm)
        {
            double? t = torch?["sgemm_gflops"]?[n.ToString(ci)]?.GetValue<double>();
            string ratio = t is null ? "-" : string.Format(ci, "{0:F2}x throughput", g / t.Value);
            Console.WriteLine(string.Format(ci, "| SGEMM {0}x{0} (GFLOPS) | {1:F1} | {2} | - | {3} |", n, g, t is null ? "-" : t.Value.ToString("F1", ci), ratio));
        }
        foreach (var (b, ms) in resnet)
        {
            double? t = torch?["resnet50_ms"]?[b.ToString(ci)]?.GetValue<double>();
            double? tcl = torch?["resnet50_channels_last_ms"]?[b.ToString(ci)]?.GetValue<double>();
            double? best = t is null ? null : tcl is null ? t : Math.Min(t.Value, tcl.Value);
            string ratio = best is null ? "-" : string.Format(ci, "{0:F2}x time", ms / best.Value);
            Console.WriteLine(string.Format(ci, "| ResNet-50 224x224 batch {0} FP32 (ms) | {1:F1} | {2} | {3} | {4} |", b, ms,
                t is null ? "-" : t.Value.ToString("F1", ci), tcl is null ? "-" : tcl.Value.ToString("F1", ci), ratio));
        }
        // process CPU time per forward: less sensitive to other load on the machine than wall time
        foreach (var (b, ms) in resnetCpu)
        {
            double? t = torch?["resnet50_cpu_ms"]?[b.ToString(ci)]?.GetValue<double>();
            double? tcl = torch?["resnet50_channels_last_cpu_ms"]?[b.ToString(ci)]?.GetValue<double>();
            double? best = t is null ? null : tcl is null ? t : Math.Min(t.Value, tcl.Value);
            string ratio = best is null ? "-" : string.Format(ci, "{0:F2}x CPU time", ms / best.Value);
            Console.WriteLine(string.Format(ci, "| ResNet-50 224x224 batch {0} FP32 (process CPU-ms) | {1:F1} | {2} | {3} | {4} |", b, ms,
                t is null ? "-" : t.Value.ToString("F1", ci), tcl is null ? "-" : tcl.Value.ToString("F1", ci), ratio));
        }
    }

    /// <summary>Median wall time in seconds of <paramref name="runs"/> calls after <paramref name="warmup"/> untimed ones; also the median process CPU seconds per call.</summary>
    private static double Median(Action f, int runs, int warmup, out double cpuSeconds)
    {
        for (int i = 0; i < warmup; i++) f();
        var t = new double[runs];
        var c = new double[runs];
        using var self = Process.GetCurrentProcess();
        for (int i = 0; i < runs; i++)
        {
            self.Refresh();
            var c0 = self.TotalProcessorTime;
            long t0 = Stopwatch.GetTimestamp();
            f();
            t[i] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            self.Refresh();
            c[i] = (self.TotalProcessorTime - c0).TotalSeconds;
        }
        cpuSeconds = Mid(c);
        return Mid(t);
    }

    private static double Mid(double[] t)
    {
        Array.Sort(t);
        return t.Length % 2 == 1 ? t[t.Length / 2] : (t[t.Length / 2 - 1] + t[t.Length / 2]) / 2;
    }

    private static JsonNode? RunTorch(CpuBenchOptions o)
    {
        Console.WriteLine($"running PyTorch baseline: {o.Python} {o.TorchScript}");
        var psi = new ProcessStartInfo(o.Python)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[] { o.TorchScript, "--runs", o.Runs.ToString(CultureInfo.InvariantCulture), "--warmup", o.Warmup.ToString(CultureInfo.InvariantCulture) })
            psi.ArgumentList.Add(a);
        if (o.GemmSizes is not null)
        {
            psi.ArgumentList.Add("--sizes");
            psi.ArgumentList.Add(string.Join(',', o.GemmSizes));
        }
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {o.Python}");
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            Console.Error.WriteLine($"PyTorch baseline failed (exit {p.ExitCode}): {stderr.Result}");
            return null;
        }
        var node = JsonNode.Parse(stdout.Trim().Split('\n')[^1]);
        Console.WriteLine($"  torch {node?["torch"]}, {node?["threads"]} threads");
        return node;
    }

    /// <summary>The 1-minute load average (other processes share these cores; figures above ~2 mean contended timings).</summary>
    private static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
        catch (IOException) { return "?"; }
    }

    private static string CpuModel()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
                if (line.StartsWith("model name", StringComparison.Ordinal)) return line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        }
        catch (IOException) { }
        return "CPU";
    }

    private static string Git(string args)
    {
        try
        {
            var psi = new ProcessStartInfo("git", args) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi);
            if (p is null) return "unknown";
            string s = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return p.ExitCode == 0 ? s : "unknown";
        }
        catch (System.ComponentModel.Win32Exception) { return "unknown"; }
    }
}
