using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Osprey.Detection.Evaluation;

namespace Osprey.Bench;

/// <summary>`coco-eval [--data DIR] [--repeat N] [--python PY] [--no-python]`: Osprey's COCO evaluator against
/// pycocotools on the same files in the same run. The data set (val2017-sized, deterministic) is made by
/// tools/coco_cases.py bench-gen when DIR has none; pycocotools must be importable by PY (PYTHONPATH is passed on).</summary>
public static class CocoEvalBench
{
    public static int Run(string[] args)
    {
        string dir = Arg(args, "--data") ?? Path.Combine(Path.GetTempPath(), "osprey-coco-bench");
        int repeat = int.Parse(Arg(args, "--repeat") ?? "5", CultureInfo.InvariantCulture);
        string python = Arg(args, "--python") ?? "python3";
        bool withPython = !args.Contains("--no-python");
        string root = FindRoot();
        string gt = Path.Combine(dir, "gt.json"), dt = Path.Combine(dir, "dt.json");
        if (!File.Exists(gt) || !File.Exists(dt))
        {
            Console.WriteLine($"generating the benchmark set in {dir} (tools/coco_cases.py bench-gen)");
            Exec(python, $"\"{Path.Combine(root, "tools", "coco_cases.py")}\" bench-gen \"{dir}\"", out _);
        }

        Console.WriteLine($"machine: {CpuName()}, {Environment.ProcessorCount} threads, {RuntimeInformation.FrameworkDescription}, {RuntimeInformation.OSDescription}");
        Console.WriteLine($"load average before: {LoadAverage()}");
        // warm-up (JIT) then timed runs; all threads, then one thread
        CocoEvaluator.EvaluateFiles(gt, dt);
        var full = new List<double>();
        var evalOnly = new List<double>();
        var cpu = new List<double>();
        CocoEvalResult? last = null;
        for (int i = 0; i < repeat; i++)
        {
            GC.Collect();
            var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
            var sw = Stopwatch.StartNew();
            last = CocoEvaluator.EvaluateFiles(gt, dt);
            _ = last.SummaryText();
            full.Add(sw.Elapsed.TotalSeconds);
            cpu.Add((Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds);
            evalOnly.Add(last.Timings.EvaluateSeconds);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"osprey run {i}: total {full[^1]:F3}s (load {last.Timings.LoadSeconds:F3}, evaluate {last.Timings.EvaluateSeconds:F3}, accumulate {last.Timings.AccumulateSeconds:F3}, summarize {last.Timings.SummarizeSeconds:F3}), cpu {cpu[^1]:F3}s"));
        }
        var one = CocoEvaluator.EvaluateFiles(gt, dt, new CocoEvalOptions { MaxDegreeOfParallelism = 1 });
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"osprey 1 thread: load {one.Timings.LoadSeconds:F3}, evaluate {one.Timings.EvaluateSeconds:F3}, accumulate {one.Timings.AccumulateSeconds:F3}"));
        double oFull = Median(full), oEval = Median(evalOnly), oCpu = Median(cpu);
        Console.Write(last!.SummaryText());

        if (!withPython) return 0;
        Console.WriteLine("running pycocotools (tools/coco_cases.py bench-time)");
        Exec(python, $"\"{Path.Combine(root, "tools", "coco_cases.py")}\" bench-time \"{dir}\"", out string pyOut);
        var line = pyOut.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        using var doc = JsonDocument.Parse(line);
        var p = doc.RootElement;
        double pTotal = p.GetProperty("total").GetDouble(), pEval = p.GetProperty("evaluate").GetDouble();
        double pCpu = p.TryGetProperty("cpu", out var c) ? c.GetDouble() : double.NaN;
        var pStats = p.GetProperty("stats").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        double maxDiff = 0;
        for (int i = 0; i < 12; i++) maxDiff = Math.Max(maxDiff, Math.Abs(pStats[i] - last.Stats[i]));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"pycocotools: total {pTotal:F3}s (load {p.GetProperty("load").GetDouble():F3}, evaluate {pEval:F3}, accumulate {p.GetProperty("accumulate").GetDouble():F3}, summarize {p.GetProperty("summarize").GetDouble():F3}), cpu {pCpu:F3}s"));
        Console.WriteLine($"load average after: {LoadAverage()}");
        Console.WriteLine();
        Console.WriteLine("| stage | pycocotools (s) | Osprey (s, median of " + repeat + ") | speed-up |");
        Console.WriteLine("|---|---:|---:|---:|");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| load + evaluate + accumulate + summarize (wall) | {pTotal:F2} | {oFull:F2} | {pTotal / oFull:F1}x |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| evaluate only (wall) | {pEval:F2} | {oEval:F2} | {pEval / oEval:F1}x |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| whole run, CPU time (all threads) | {pCpu:F2} | {oCpu:F2} | {pCpu / oCpu:F1}x |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"max |stat difference| over the 12 numbers: {maxDiff:E2}"));
        return maxDiff <= 1e-10 ? 0 : 1;
    }

    private static double Median(List<double> v)
    {
        var a = v.ToArray();
        Array.Sort(a);
        return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2;
    }

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static void Exec(string file, string arguments, out string stdout)
    {
        var psi = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, UseShellExecute = false };
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {arguments} exited with {p.ExitCode}");
    }

    private static string CpuName()
    {
        try
        {
            foreach (var l in File.ReadLines("/proc/cpuinfo"))
                if (l.StartsWith("model name", StringComparison.Ordinal)) return l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        }
        catch (IOException) { }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    private static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Trim(); }
        catch (IOException) { return "?"; }
    }

    private static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Osprey.slnx"))) return d.FullName;
        return Directory.GetCurrentDirectory();
    }
}
