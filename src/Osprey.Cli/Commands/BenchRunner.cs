using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Cuda.Runtime;
using Osprey.Detection.Boxes;
using Osprey.Detection.Models;
using Osprey.Engine;
using Osprey.Engine.Runtime;
using Osprey.Vision.Imaging;
using Spectre.Console;

namespace Osprey.Cli.Commands;

/// <summary>
/// The work of `osprey bench`: one engine context on one device; synthetic 640x480 images decoded in memory. Per-stage times
/// are measured eagerly with a synchronisation after each stage; end-to-end throughput and latency run the normal path
/// (pre-processing, then on CUDA the captured graph of network + decode + NMS, and the download of the detections).
/// </summary>
public static class BenchRunner
{
    public static int Run(BenchSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        if ((s.Engine is null) == (s.Arch is null)) throw new ArgumentException("give --engine FILE or --arch NAME (one of them)");
        if (s.Engine is not null && (s.Weights is not null || s.Size is { Length: > 0 } || s.Precision is not null))
            throw new ArgumentException("--engine carries weights, size and precision: drop --weights/--size/--precision");
        if (s.Streams != 1)
            throw new ArgumentException($"--streams {s.Streams}: only 1 execution context per device is implemented (CudaBackend queues on one stream per device)");
        if (!(s.Seconds > 0 && s.Seconds <= 3600)) throw new ArgumentException($"--seconds {s.Seconds} must be in (0, 3600]");
        var device = ParseDevices(s.Devices);

        using var engine = Open(s, device);
        int batch = s.Batch ?? engine.MaxBatch;
        if (batch < 1 || batch > engine.MaxBatch) throw new ArgumentException($"--batch {batch}: this engine takes 1 to {engine.MaxBatch}");
        var backend = BackendRegistry.Get(device);
        var images = SyntheticImages(batch);

        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 2; i++) engine.Detect(images);   // warm-up: kernels, plans, graph capture
        backend.Synchronize();
        double warmup = clock.Elapsed.TotalSeconds;

        // per stage, eagerly
        var pre = new List<double>();
        var net = new List<double>();
        var post = new List<double>();
        var sizes = new ImageSize[batch];
        long stagesStart = Stopwatch.GetTimestamp();
        for (int it = 0; it < 10 && (it < 2 || Stopwatch.GetElapsedTime(stagesStart).TotalSeconds < s.Seconds / 2); it++)
        {
            long t0 = Stopwatch.GetTimestamp();
            using var b = engine.Preprocess(images);
            engine.LoadInput(b);
            backend.Synchronize();
            long t1 = Stopwatch.GetTimestamp();
            engine.RunNetwork();
            backend.Synchronize();
            long t2 = Stopwatch.GetTimestamp();
            for (int i = 0; i < batch; i++) sizes[i] = new ImageSize(b.Resized[i].Height, b.Resized[i].Width);
            engine.PostProcess(sizes);
            long t3 = Stopwatch.GetTimestamp();
            pre.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
            net.Add(Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
            post.Add(Stopwatch.GetElapsedTime(t2, t3).TotalMilliseconds);
        }

        // end to end
        var latency = new List<double>();
        long start = Stopwatch.GetTimestamp();
        while (Stopwatch.GetElapsedTime(start).TotalSeconds < s.Seconds || latency.Count < 3)
        {
            long t0 = Stopwatch.GetTimestamp();
            engine.Detect(images);
            latency.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        double elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        double ips = latency.Count * (double)batch / elapsed;
        long reserved = backend is CudaBackend cb ? cb.Allocator.ReservedBytes : 0;

        latency.Sort();
        var spec = engine.Spec;
        var table = new Table().Border(TableBorder.Rounded).AddColumns("measure", "value");
        string Ms(double v) => v.ToString("F2", CultureInfo.InvariantCulture) + " ms";
        table.AddRow("engine", Markup.Escape($"{spec.Architecture} {spec.Height}x{spec.Width} {(spec.Precision == DType.Float16 ? "fp16" : "fp32")} max batch {spec.Batch}"));
        table.AddRow("device", Markup.Escape($"{device}: {backend.Name}"));
        table.AddRow("batch", batch.ToString(CultureInfo.InvariantCulture));
        table.AddRow("CUDA graphs", engine.UseGraphs && device.Type == DeviceType.Cuda ? $"yes ({engine.CapturedGraphs} captured)" : "no");
        table.AddRow("images/s", ips.ToString("F1", CultureInfo.InvariantCulture));
        table.AddRow("latency p50 / p90 / p99 (per batch)", $"{Ms(Pct(latency, 50))} / {Ms(Pct(latency, 90))} / {Ms(Pct(latency, 99))}");
        table.AddRow("stage: pre-processing (median)", Ms(Median(pre)));
        table.AddRow("stage: network, eager (median)", Ms(Median(net)));
        table.AddRow("stage: decode + NMS + download (median)", Ms(Median(post)));
        table.AddRow("memory: weights / arena", $"{engine.Weights.Bytes / 1048576.0:F1} MiB / {engine.Executor.Plan.ArenaBytes / 1048576.0:F1} MiB");
        table.AddRow("memory: peak allocated / reserved", $"{backend.Memory.PeakBytes / 1048576.0:F1} MiB / {reserved / 1048576.0:F1} MiB");
        table.AddRow("runs / warm-up", $"{latency.Count} in {elapsed:F1} s / {warmup:F1} s");
        AnsiConsole.Write(table);
        if (s.Json is not null)
        {
            // written field by field: reflection-based JsonSerializer does not survive trimming (the GPU-host pack)
            using var stream = File.Create(s.Json);
            using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
            w.WriteStartObject();
            w.WriteString("architecture", spec.Architecture);
            w.WriteNumber("height", spec.Height);
            w.WriteNumber("width", spec.Width);
            w.WriteString("precision", spec.Precision == DType.Float16 ? "fp16" : "fp32");
            w.WriteNumber("max_batch", spec.Batch);
            w.WriteNumber("batch", batch);
            w.WriteString("device", device.ToString());
            w.WriteString("device_name", backend.Name);
            w.WriteNumber("cuda_graphs", engine.CapturedGraphs);
            w.WriteNumber("images_per_second", ips);
            w.WriteNumber("latency_ms_p50", Pct(latency, 50));
            w.WriteNumber("latency_ms_p90", Pct(latency, 90));
            w.WriteNumber("latency_ms_p99", Pct(latency, 99));
            w.WriteNumber("stage_ms_preprocess", Median(pre));
            w.WriteNumber("stage_ms_network", Median(net));
            w.WriteNumber("stage_ms_postprocess", Median(post));
            w.WriteNumber("weights_bytes", engine.Weights.Bytes);
            w.WriteNumber("arena_bytes", engine.Executor.Plan.ArenaBytes);
            w.WriteNumber("peak_allocated_bytes", backend.Memory.PeakBytes);
            w.WriteNumber("reserved_bytes", reserved);
            w.WriteNumber("runs", latency.Count);
            w.WriteNumber("seconds", elapsed);
            w.WriteEndObject();
        }
        return 0;
    }

    private static EngineDetector Open(BenchSettings s, Device device)
    {
        if (s.Engine is not null) return EngineDetector.Load(s.Engine, device);
        var arch = Architectures.Get(s.Arch!);
        var precision = ExportCommand.ParsePrecision(s.Precision ?? (device.Type == DeviceType.Cuda ? "fp16" : "fp32"), device);
        var spec = ExportCommand.Spec(arch.Name, s.Size, precision, s.Batch ?? 1, null, null, null);
        using var weights = s.Weights is not null ? WeightFile.Load(s.Weights) : SeededWeights.For(arch);
        var graph = DetectorEngines.Build(spec, weights, s.Weights ?? "seeded");
        return new EngineDetector(graph, device, s.Weights ?? "seeded");
    }

    /// <summary>"cpu", "all" (every CUDA GPU) or a list of GPU indices; more than one device is refused for now.</summary>
    internal static Device ParseDevices(string devices)
    {
        if (devices == "cpu") return Device.Cpu;
        int count;
        if (devices == "all")
        {
            count = CudaDriver.DeviceCount(out string? why);
            if (count == 0) throw new ArgumentException($"--devices all: no CUDA GPU ({why})");
            if (count > 1) throw new ArgumentException($"--devices all: {count} GPUs; running on several GPUs at once is not implemented yet (give one index)");
            return Device.Cuda(0);
        }
        var parts = devices.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length != 1) throw new ArgumentException($"--devices {devices}: running on several GPUs at once is not implemented yet (give one index)");
        if (!int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int index))
            throw new ArgumentException($"--devices {devices}: expected all, cpu or GPU indices like 0,1");
        if (!BackendRegistry.HasProvider(DeviceType.Cuda)) CudaBackend.Register();
        return Device.Cuda(index);
    }

    /// <summary>Deterministic 640x480 test pictures (gradients and blocks), one per batch slot.</summary>
    internal static RgbImage[] SyntheticImages(int n)
    {
        var images = new RgbImage[n];
        for (int k = 0; k < n; k++)
        {
            var img = new RgbImage(640, 480);
            var px = img.Pixels;
            for (int y = 0; y < 480; y++)
                for (int x = 0; x < 640; x++)
                {
                    int i = (y * 640 + x) * 3;
                    px[i] = (byte)((x + 7 * k) & 255);
                    px[i + 1] = (byte)((y * 2 + 13 * k) & 255);
                    px[i + 2] = (byte)(((x / 40 + y / 40) & 1) * 200 + 20);
                }
            images[k] = img;
        }
        return images;
    }

    private static double Median(List<double> v)
    {
        var c = v.ToArray();
        Array.Sort(c);
        return Pct(c, 50);
    }

    private static double Pct(IReadOnlyList<double> sorted, double p)
    {
        if (sorted.Count == 0) return double.NaN;
        double r = p / 100 * (sorted.Count - 1);
        int lo = (int)Math.Floor(r), hi = Math.Min(lo + 1, sorted.Count - 1);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (r - lo);
    }
}
