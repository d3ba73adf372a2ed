using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Cuda.Native;
using Osprey.Cuda.Runtime;

namespace Osprey.Bench;

/// <summary>
/// `gpu-core`: element-wise kernel bandwidth against the device-to-device copy bandwidth, and the launch
/// overhead of a small op eagerly and inside a CUDA graph; with `--torch FILE` (bench/gpu/core_bench.py's
/// output) PyTorch's numbers for the same ops are printed alongside. Timing: CUDA events, warm-up, median.
/// </summary>
public static class GpuCoreBench
{
    private const long N = 64L * 1024 * 1024;
    private const int Reps = 7, Iters = 10, Small = 1024, EagerCalls = 20000, GraphOps = 100, GraphReplays = 200;

    public static int Run(string[] args)
    {
        string? torchFile = null;
        for (int i = 0; i + 1 < args.Length; i++) if (args[i] == "--torch") torchFile = args[i + 1];
        CudaBackend.Register();
        if (!CudaBackend.IsAvailable(out string why)) { Console.Error.WriteLine($"gpu-core: no CUDA GPU ({why})"); return 2; }
        var be = (CudaBackend)BackendRegistry.Get(Device.Cuda(0));
        var gpu = be.Device;

        double copyGbs;
        using (var src = Tensor.Full(new Shape((int)N), 1.0, DType.Float32, gpu))
        using (var dst = Tensor.Empty(new Shape((int)N), DType.Float32, gpu))
        {
            double ms = Timed(be, () => CuDriver.Check(CuDriver.cuMemcpyDtoDAsync((ulong)dst.DataPointer, (ulong)src.DataPointer, (nuint)(N * 4), be.Stream.Handle)));
            copyGbs = 2.0 * N * 4 / ms / 1e6;
        }

        var rows = new List<(string Op, string DType, double Gbs)>();
        foreach (var t in new[] { DType.Float32, DType.Float16 })
        {
            int es = t.SizeOf();
            using var a = Random(gpu, t, 1);
            using var b = Random(gpu, t, 2);
            using var m = a.Reshape(16384, (int)(N / 16384));
            using var bias = b.Slice(0, 0, (int)(N / 16384));
            var other = t == DType.Float32 ? DType.Float16 : DType.Float32;
            (string, Func<Tensor>, long)[] ops =
            [
                ("relu", () => Op.Relu(a), 2 * N * es),
                ("gelu", () => Op.Gelu(a), 2 * N * es),
                ("add", () => Op.Add(a, b), 3 * N * es),
                ("mul scalar", () => Op.Binary(BinaryOp.Mul, a, 1.5), 2 * N * es),
                ("add row bias", () => Op.Add(m, bias), 2 * N * es),
                ($"cast to {other.Name()}", () => Op.Cast(a, other), N * (es + other.SizeOf())),
                ("fill (write only)", () => Tensor.Full(a.Shape, 1.0, t, gpu), N * es),
            ];
            foreach (var (name, fn, bytes) in ops)
            {
                double ms = Timed(be, () => fn().Dispose());
                rows.Add((name, t.Name(), bytes / ms / 1e6));
            }
        }

        // launch overhead of a small op: eager (host time per call, output allocated by the op), and replayed from a CUDA graph
        using var x = Random(gpu, DType.Float32, 3, Small);
        for (int i = 0; i < 100; i++) Op.Relu(x).Dispose();
        be.Synchronize();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < EagerCalls; i++) Op.Relu(x).Dispose();
        be.Synchronize();
        double eagerUs = sw.Elapsed.TotalMicroseconds / EagerCalls;
        using var yPre = Tensor.Empty(x.Shape, DType.Float32, gpu);
        sw.Restart();
        for (int i = 0; i < EagerCalls; i++) be.Unary(UnaryKind.Relu, x, yPre);
        be.Synchronize();
        double launchUs = sw.Elapsed.TotalMicroseconds / EagerCalls;
        Tensor? last = null;
        double graphUs;
        using (var graph = be.CaptureGraph(() =>
        {
            Tensor y = x.Share();
            for (int i = 0; i < GraphOps; i++) { var next = Op.Relu(y); y.Dispose(); y = next; }
            last = y;
        }))
        {
            double ms = Timed(be, graph.Launch, GraphReplays, 5);
            graphUs = ms * 1e3 / GraphOps;
            last?.Dispose();
        }

        JsonElement? torch = null;
        if (torchFile is not null && File.Exists(torchFile))
        {
            try { torch = JsonDocument.Parse(File.ReadAllText(torchFile)).RootElement; }
            catch (JsonException e) { Console.Error.WriteLine($"gpu-core: ignoring {torchFile}: {e.Message}"); }
        }
        Print(be, copyGbs, rows, eagerUs, launchUs, graphUs, torch);
        return 0;
    }

    private static Tensor Random(Device d, DType t, int seed, long n = N)
    {
        var rng = new Random(seed);
        var v = new float[n];
        for (long i = 0; i < n; i++) v[i] = (float)(rng.NextDouble() * 4 - 2);
        using var f = Tensor.FromSpan<float>(v, new Shape((int)n), d);
        return Op.Cast(f, t);
    }

    /// <summary>Median milliseconds per call, timed with CUDA events on the backend's stream after a warm-up.</summary>
    private static double Timed(CudaBackend be, Action fn, int iters = Iters, int reps = Reps)
    {
        for (int i = 0; i < 3; i++) fn();
        be.Synchronize();
        using var start = new CudaEvent();
        using var end = new CudaEvent();
        var times = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            start.Record(be.Stream);
            for (int i = 0; i < iters; i++) fn();
            end.Record(be.Stream);
            end.Synchronize();
            times[r] = CudaEvent.Elapsed(start, end) / iters;
        }
        Array.Sort(times);
        return times[reps / 2];
    }

    private static void Print(CudaBackend be, double copyGbs, List<(string Op, string DType, double Gbs)> rows,
        double eagerUs, double launchUs, double graphUs, JsonElement? torch)
    {
        var inv = CultureInfo.InvariantCulture;
        double? tCopy = torch?.GetProperty("copy_gbs").GetDouble();
        Console.WriteLine(string.Create(inv, $"device: {be.Name}; torch: {(torch is { } tj ? tj.GetProperty("torch").GetString() + " (CUDA " + tj.GetProperty("cuda").GetString() + ")" : "not run")}"));
        Console.WriteLine();
        Console.WriteLine("| op | dtype | Osprey GB/s | Osprey % of copy | PyTorch GB/s | PyTorch % of copy |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|");
        Console.WriteLine(string.Create(inv, $"| device-to-device copy (cuMemcpy / copy_) | float32 | {copyGbs:F0} | 100% | {Fmt(tCopy)} | {(tCopy is null ? "-" : "100%")} |"));
        foreach (var (op, dt, gbs) in rows)
        {
            double? tg = null;
            if (torch is { } t && t.GetProperty("ops").TryGetProperty($"{op}|{dt}", out var v)) tg = v.GetDouble();
            Console.WriteLine(string.Create(inv, $"| {op} | {dt} | {gbs:F0} | {100 * gbs / copyGbs:F0}% | {Fmt(tg)} | {(tg is null || tCopy is null ? "-" : (100 * tg.Value / tCopy.Value).ToString("F0", inv) + "%")} |"));
        }
        Console.WriteLine();
        Console.WriteLine("| small op (relu, 1024 float32) | Osprey µs/op | PyTorch µs/op |");
        Console.WriteLine("|---|---:|---:|");
        Console.WriteLine(string.Create(inv, $"| eager, output allocated per call (host time) | {eagerUs:F2} | {Fmt(torch?.GetProperty("eager_us_per_op").GetDouble(), "F2")} |"));
        Console.WriteLine(string.Create(inv, $"| eager, preallocated output (backend call) | {launchUs:F2} | - |"));
        Console.WriteLine(string.Create(inv, $"| CUDA graph of {GraphOps} ops, per op (GPU time) | {graphUs:F2} | {Fmt(torch?.GetProperty("graph_us_per_op").GetDouble(), "F2")} |"));
    }

    private static string Fmt(double? v, string f = "F0") => v is null ? "-" : v.Value.ToString(f, CultureInfo.InvariantCulture);
}
