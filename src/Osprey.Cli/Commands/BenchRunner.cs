using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Osprey.Core;
using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Cuda.Runtime;
using Osprey.Detection.Boxes;
using Osprey.Detection.Models;
using Osprey.Engine;
using Osprey.Engine.Graph;
using Osprey.Engine.Runtime;
using Osprey.Vision.Imaging;
using Spectre.Console;

namespace Osprey.Cli.Commands;

/// <summary>
/// The work of `osprey bench`: S execution contexts (each its own CUDA stream and arena, sharing the weights) on every
/// listed device, each driven by its own thread; synthetic 640x480 images decoded in memory. Per-stage times are measured
/// on the first context eagerly with a synchronisation after each stage; end-to-end throughput and latency run the
/// normal path, pipelined on CUDA: while the GPU runs batch i (captured graph of network + decode + NMS), the host
/// pre-processes batch i+1 (pinned staging, upload, pre-processing kernel queued behind batch i), then downloads batch i's
/// detections.
/// </summary>
public static class BenchRunner
{
    public static int Run(BenchSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        if ((s.Engine is null) == (s.Arch is null)) throw new ArgumentException("give --engine FILE or --arch NAME (one of them)");
        if (s.Engine is not null && (s.Weights is not null || s.Size is { Length: > 0 } || s.Precision is not null))
            throw new ArgumentException("--engine carries weights, size and precision: drop --weights/--size/--precision");
        if (s.SaveWeights is not null && s.Arch is null) throw new ArgumentException("--save-weights needs --arch (an engine file holds its weights in kernel layout)");
        if (s.Streams < 1 || s.Streams > 16) throw new ArgumentException($"--streams {s.Streams}: 1 to 16 execution contexts per device");
        if (!(s.Seconds > 0 && s.Seconds <= 3600)) throw new ArgumentException($"--seconds {s.Seconds} must be in (0, 3600]");
        var devices = ParseDevices(s.Devices);

        var contexts = new List<EngineDetector>();
        ComputeGraph? graph = null;
        try
        {
            foreach (var device in devices)
            {
                var first = Open(s, device, ref graph);
                contexts.Add(first);
                // further contexts share the first one's weights; each has its own stream, arena and graphs
                for (int c = 1; c < s.Streams; c++)
                    contexts.Add(new EngineDetector(first.Weights.Graph, device, "bench", first.Weights, ownStream: true));
            }
            return Measure(s, devices, contexts);
        }
        finally
        {
            // contexts sharing weights go first; the owner (first per device) last
            for (int i = contexts.Count - 1; i >= 0; i--) contexts[i].Dispose();
        }
    }

    private static int Measure(BenchSettings s, Device[] devices, List<EngineDetector> contexts)
    {
        var engine = contexts[0];
        var device = devices[0];
        int batch = s.Batch ?? engine.MaxBatch;
        if (batch < 1 || batch > engine.MaxBatch) throw new ArgumentException($"--batch {batch}: this engine takes 1 to {engine.MaxBatch}");
        var backend = BackendRegistry.Get(device);
        var images = SyntheticImages(batch);

        var clock = Stopwatch.StartNew();
        foreach (var ctx in contexts)
        {
            for (int i = 0; i < 2; i++) ctx.Detect(images);   // warm-up: kernels, plans, graph capture (one context at a time)
            ctx.Synchronize();
        }
        double warmup = clock.Elapsed.TotalSeconds;

        // per stage, eagerly, on the first context
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
            engine.Synchronize();
            long t1 = Stopwatch.GetTimestamp();
            engine.RunNetwork();
            engine.Synchronize();
            long t2 = Stopwatch.GetTimestamp();
            for (int i = 0; i < batch; i++) sizes[i] = new ImageSize(b.Resized[i].Height, b.Resized[i].Width);
            engine.PostProcess(sizes);
            long t3 = Stopwatch.GetTimestamp();
            pre.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
            net.Add(Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
            post.Add(Stopwatch.GetElapsedTime(t2, t3).TotalMilliseconds);
        }

        // end to end: one thread per context, all started together
        var latencies = new List<double>[contexts.Count];
        var counts = new long[contexts.Count];
        using var go = new ManualResetEventSlim(false);
        var threads = new Thread[contexts.Count];
        Exception? failure = null;
        long start = 0;
        for (int c = 0; c < contexts.Count; c++)
        {
            int ci = c;
            latencies[ci] = [];
            threads[ci] = new Thread(() =>
            {
                try
                {
                    go.Wait();
                    counts[ci] = RunLoop(contexts[ci], images, s.Seconds, Volatile.Read(ref start), latencies[ci]);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref failure, e, null);
                }
            }) { IsBackground = true, Name = $"bench context {ci}" };
            threads[ci].Start();
        }
        Volatile.Write(ref start, Stopwatch.GetTimestamp());
        go.Set();
        foreach (var t in threads) t.Join();
        double elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        if (failure is not null) throw new OspreyException($"bench: a context failed: {failure.Message}", failure);

        var latency = new List<double>();
        foreach (var l in latencies) latency.AddRange(l);
        latency.Sort();
        long totalBatches = counts.Sum();
        double ips = totalBatches * (double)batch / elapsed;
        var perDevice = new (Device Device, double Ips, long Reserved, long Peak, string Name)[devices.Length];
        for (int d = 0; d < devices.Length; d++)
        {
            long n = 0;
            for (int c = 0; c < contexts.Count; c++) if (contexts[c].Device == devices[d]) n += counts[c];
            var be = BackendRegistry.Get(devices[d]);
            perDevice[d] = (devices[d], n * (double)batch / elapsed, be is CudaBackend cb ? cb.Allocator.ReservedBytes : 0, be.Memory.PeakBytes, be.Name);
        }

        var spec = engine.Spec;
        var table = new Table().Border(TableBorder.Rounded).AddColumns("measure", "value");
        string Ms(double v) => v.ToString("F2", CultureInfo.InvariantCulture) + " ms";
        var inv = CultureInfo.InvariantCulture;
        table.AddRow("engine", Markup.Escape($"{spec.Architecture} {spec.Height}x{spec.Width} {(spec.Precision == DType.Float16 ? "fp16" : "fp32")} max batch {spec.Batch}"));
        table.AddRow("devices", Markup.Escape(string.Join("; ", perDevice.Select(p => $"{p.Device}: {p.Name}"))));
        table.AddRow("batch / contexts per device", string.Create(inv, $"{batch} / {s.Streams}"));
        table.AddRow("CUDA graphs", engine.UseGraphs && device.Type == DeviceType.Cuda ? $"yes ({engine.CapturedGraphs} captured per context)" : "no");
        table.AddRow("images/s (total)", ips.ToString("F1", inv));
        if (perDevice.Length > 1)
            foreach (var p in perDevice) table.AddRow(Markup.Escape($"images/s {p.Device}"), p.Ips.ToString("F1", inv));
        table.AddRow("latency p50 / p90 / p99 (per batch)", $"{Ms(Pct(latency, 50))} / {Ms(Pct(latency, 90))} / {Ms(Pct(latency, 99))}");
        table.AddRow("stage: pre-processing (median)", Ms(Median(pre)));
        table.AddRow("stage: network, eager (median)", Ms(Median(net)));
        table.AddRow("stage: decode + NMS + download (median)", Ms(Median(post)));
        table.AddRow("memory: weights / arena per context", $"{engine.Weights.Bytes / 1048576.0:F1} MiB / {engine.Executor.Plan.ArenaBytes / 1048576.0:F1} MiB");
        foreach (var p in perDevice)
            table.AddRow(Markup.Escape($"memory {p.Device}: peak allocated / reserved"), $"{p.Peak / 1048576.0:F1} MiB / {p.Reserved / 1048576.0:F1} MiB");
        table.AddRow("runs / warm-up", $"{totalBatches} in {elapsed:F1} s / {warmup:F1} s");
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
            w.WriteNumber("streams", s.Streams);
            w.WriteString("device", string.Join(",", devices.Select(d => d.ToString())));
            w.WriteString("device_name", backend.Name);
            w.WriteNumber("cuda_graphs", engine.CapturedGraphs);
            w.WriteNumber("images_per_second", ips);
            w.WriteStartArray("per_device");
            foreach (var p in perDevice)
            {
                w.WriteStartObject();
                w.WriteString("device", p.Device.ToString());
                w.WriteString("name", p.Name);
                w.WriteNumber("images_per_second", p.Ips);
                w.WriteNumber("peak_allocated_bytes", p.Peak);
                w.WriteNumber("reserved_bytes", p.Reserved);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNumber("latency_ms_p50", Pct(latency, 50));
            w.WriteNumber("latency_ms_p90", Pct(latency, 90));
            w.WriteNumber("latency_ms_p99", Pct(latency, 99));
            w.WriteNumber("stage_ms_preprocess", Median(pre));
            w.WriteNumber("stage_ms_network", Median(net));
            w.WriteNumber("stage_ms_postprocess", Median(post));
            w.WriteNumber("weights_bytes", engine.Weights.Bytes);
            w.WriteNumber("arena_bytes", engine.Executor.Plan.ArenaBytes);
            w.WriteNumber("peak_allocated_bytes", perDevice[0].Peak);
            w.WriteNumber("reserved_bytes", perDevice[0].Reserved);
            w.WriteNumber("runs", totalBatches);
            w.WriteNumber("seconds", elapsed);
            w.WriteEndObject();
        }
        return 0;
    }

    /// <summary>
    /// One context's measuring loop; returns the batches done. CUDA: batch i+1 is pre-processed while batch i runs
    /// (Submit, Preprocess next, Collect); latency is Submit to Collect plus that batch's own pre-processing.
    /// </summary>
    private static long RunLoop(EngineDetector engine, RgbImage[] images, double seconds, long start, List<double> latency)
    {
        long done = 0;
        if (engine.Device.Type != DeviceType.Cuda)
        {
            while (Stopwatch.GetElapsedTime(start).TotalSeconds < seconds || done < 3)
            {
                long t0 = Stopwatch.GetTimestamp();
                engine.Detect(images);
                latency.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                done++;
            }
            return done;
        }
        long tPre = Stopwatch.GetTimestamp();
        var current = engine.Preprocess(images);
        try
        {
            while (true)
            {
                var pending = engine.Submit(current);
                bool more = Stopwatch.GetElapsedTime(start).TotalSeconds < seconds || done < 2;
                long tNext = Stopwatch.GetTimestamp();
                var next = more ? engine.Preprocess(images) : null;
                engine.Collect(pending);
                latency.Add(Stopwatch.GetElapsedTime(tPre).TotalMilliseconds);
                tPre = tNext;
                done++;
                current.Dispose();
                current = next!;
                if (next is null) return done;
            }
        }
        finally
        {
            current?.Dispose();
        }
    }

    private static EngineDetector Open(BenchSettings s, Device device, ref ComputeGraph? built)
    {
        if (s.Engine is not null) return EngineDetector.Load(s.Engine, device, ownStream: true);
        if (built is null)
        {
            // traced and optimised once; every device uploads its own copy of the weights
            var arch = Architectures.Get(s.Arch!);
            var precision = ExportCommand.ParsePrecision(s.Precision ?? (device.Type == DeviceType.Cuda ? "fp16" : "fp32"), device);
            var spec = ExportCommand.Spec(arch.Name, s.Size, precision, s.Batch ?? 1, null, null, null);
            using var weights = s.Weights is not null ? WeightFile.Load(s.Weights) : SeededWeights.For(arch);
            if (s.SaveWeights is not null) SafeTensors.Save(s.SaveWeights, weights);
            built = DetectorEngines.Build(spec, weights, s.Weights ?? "seeded", options: DetectorEngines.DetectorDefaults with { PadConvChannelsTo = s.PadChannels, Float32Outputs = s.Float32Heads });
        }
        return new EngineDetector(built, device, s.Weights ?? "seeded", ownStream: true);
    }

    /// <summary>"cpu", "all" (every CUDA GPU) or a list of GPU indices (each once, each present).</summary>
    internal static Device[] ParseDevices(string devices)
    {
        if (devices == "cpu") return [Device.Cpu];
        int count = CudaDriver.DeviceCount(out string? why);
        if (devices == "all")
        {
            if (count == 0) throw new ArgumentException($"--devices all: no CUDA GPU ({why})");
        }
        if (!BackendRegistry.HasProvider(DeviceType.Cuda)) CudaBackend.Register();
        if (devices == "all") return [.. Enumerable.Range(0, count).Select(Device.Cuda)];
        var parts = devices.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new ArgumentException($"--devices '{devices}': expected all, cpu or GPU indices like 0,1");
        var result = new List<Device>();
        foreach (var part in parts)
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int index))
                throw new ArgumentException($"--devices {devices}: expected all, cpu or GPU indices like 0,1 ('{part}' is not an index)");
            if (index >= count) throw new ArgumentException($"--devices {devices}: GPU {index} does not exist ({count} CUDA device(s){(why is null ? "" : ": " + why)})");
            if (result.Contains(Device.Cuda(index))) throw new ArgumentException($"--devices {devices}: GPU {index} listed twice");
            result.Add(Device.Cuda(index));
        }
        return [.. result];
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
