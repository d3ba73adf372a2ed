using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Detection;
using Osprey.Detection.Models;
using Osprey.Vision.Imaging;
using Osprey.Vision.Transforms;

namespace Osprey.Bench;

/// <summary>
/// `gpu-infer`: end-to-end detection throughput on the GPU (issue 4 item 7), from a decoded uint8 batch already on
/// the device to final detections on the host (fused pre-processing, network, decode + NMS), fp16 channels-last by
/// default. Weights and images come from bench/gpu/infer_bench.py (formula weights as .pth, formula images as raw
/// uint8 HWC), which times torchvision on the same inputs in the same run; with --torch its JSON is printed alongside.
/// Each sample is one batch, ended by the host having the detections (one synchronisation); median of --runs.
/// A per-stage split (pre-processing, network, post-processing incl. the head download) is timed separately with a
/// synchronisation after each stage.
/// </summary>
public static class GpuInferBench
{
    public static int Run(string[] args)
    {
        string arch = "ssd300_vgg16", weights = "", images = "", precision = "fp16";
        string? torchFile = null, json = null;
        int batch = 64, height = 480, width = 640, runs = 20, minSize = 800, maxSize = 1333;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            string v = args[i + 1];
            switch (args[i])
            {
                case "--arch": arch = v; break;
                case "--weights": weights = v; break;
                case "--images": images = v; break;
                case "--batch": batch = Int(v); break;
                case "--height": height = Int(v); break;
                case "--width": width = Int(v); break;
                case "--runs": runs = Int(v); break;
                case "--min-size": minSize = Int(v); break;
                case "--max-size": maxSize = Int(v); break;
                case "--precision": precision = v; break;
                case "--torch": torchFile = v; break;
                case "--json": json = v; break;
                default: Console.Error.WriteLine($"gpu-infer: unknown option {args[i]}"); return 2;
            }
        }
        CudaBackend.Register();
        if (!CudaBackend.IsAvailable(out string why)) { Console.Error.WriteLine($"gpu-infer: no CUDA GPU ({why})"); return 2; }
        var be = (CudaBackend)BackendRegistry.Get(Device.Cuda(0));
        var a = Architectures.Get(arch);
        var resize = a.Resize.Kind == ResizeKind.Fixed ? a.Resize : a.Resize with { MinSize = minSize, MaxSize = maxSize };
        var options = new DetectorOptions
        {
            Device = be.Device, Format = MemoryFormat.ChannelsLast, Resize = resize,
            Precision = precision == "fp16" ? Precision.Fp16 : Precision.Fp32,
        };
        byte[] raw = File.ReadAllBytes(images);
        long per = (long)height * width * 3;
        if (raw.LongLength != per * batch) { Console.Error.WriteLine($"gpu-infer: {images} has {raw.LongLength} bytes, expected {batch} x {height} x {width} x 3"); return 2; }
        var imgs = new RgbImage[batch];
        for (int i = 0; i < batch; i++)
        {
            imgs[i] = new RgbImage(width, height);
            raw.AsSpan((int)(i * per), (int)per).CopyTo(imgs[i].Pixels);
        }
        int count = 0;
        string post = "GPU";
        var detector = Detector.Load(arch, weights, options);
        try
        {
            for (int w = 0; w < 3; w++) count = Count(detector.Detect(imgs));   // uploads the batch; cuDNN plans are timed here
        }
        catch (Exception e) when (e is Osprey.Core.OspreyException or ArgumentException or InvalidOperationException)
        {
            Console.WriteLine($"gpu-infer: GPU post-processing failed ({e.GetType().Name}: {e.Message}); this run uses host post-processing instead");
            detector.Dispose();
            post = "host";
            detector = Detector.Load(arch, weights, options with { GpuPostProcess = false });
            for (int w = 0; w < 3; w++) count = Count(detector.Detect(imgs));
        }
        using var owned = detector;
        var total = new List<double>();
        var withUpload = new List<double>();
        var pre = new List<double>();
        var net = new List<double>();
        var postMs = new List<double>();
        for (int r = 0; r < runs; r++)
        {
            var sw = Stopwatch.StartNew();
            count = Count(detector.DetectResident(imgs));
            total.Add(sw.Elapsed.TotalMilliseconds);
        }
        for (int r = 0; r < Math.Max(3, runs / 4); r++)
        {
            var sw = Stopwatch.StartNew();
            Count(detector.Detect(imgs));
            withUpload.Add(sw.Elapsed.TotalMilliseconds);
        }
        for (int r = 0; r < Math.Max(3, runs / 4); r++)
        {
            var sw = Stopwatch.StartNew();
            using var b = detector.PreprocessResident(imgs);
            be.Synchronize();
            pre.Add(sw.Elapsed.TotalMilliseconds);
            sw.Restart();
            using var heads = detector.Forward(b);
            be.Synchronize();
            net.Add(sw.Elapsed.TotalMilliseconds);
            sw.Restart();
            Count(detector.PostProcessBatch(heads, b));
            postMs.Add(sw.Elapsed.TotalMilliseconds);
        }
        double ms = Median(total);
        var result = new Dictionary<string, object>
        {
            ["side"] = "osprey", ["arch"] = arch, ["batch"] = batch, ["input"] = $"{height}x{width}", ["precision"] = precision,
            ["ms"] = ms, ["images_per_s"] = batch * 1000.0 / ms, ["ms_with_upload"] = Median(withUpload),
            ["pre_ms"] = Median(pre), ["network_ms"] = Median(net), ["post_ms"] = Median(postMs), ["detections"] = count, ["post_on"] = post,
            ["device"] = be.Name,
        };
        if (json is not null) File.WriteAllText(json, JsonSerializer.Serialize(result));
        Print(result, torchFile);
        return 0;
    }

    private static void Print(Dictionary<string, object> o, string? torchFile)
    {
        Dictionary<string, JsonElement>? t = null;
        if (torchFile is not null && File.Exists(torchFile))
        {
            try { t = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(File.ReadAllText(torchFile)); }
            catch (JsonException e) { Console.WriteLine($"(torch result unreadable: {e.Message})"); }
        }
        string T(string key, string fmt) => t is not null && t.TryGetValue(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble().ToString(fmt, CultureInfo.InvariantCulture) : "-";
        double ms = (double)o["ms"];
        Console.WriteLine();
        Console.WriteLine($"### gpu-infer: {o["arch"]}, batch {o["batch"]}, {o["input"]} uint8 images on the GPU -> detections on the host, {o["precision"]} channels_last, Osprey post-processing on the {o["post_on"]} ({o["device"]})");
        Console.WriteLine();
        Console.WriteLine("| | Osprey | torchvision | speed-up |");
        Console.WriteLine("|---|---:|---:|---:|");
        string ratio = t is not null && t.TryGetValue("ms", out var tm) && tm.ValueKind == JsonValueKind.Number ? (tm.GetDouble() / ms).ToString("F2", CultureInfo.InvariantCulture) + "x" : "-";
        Console.WriteLine($"| images/s | {(double)o["images_per_s"]:F1} | {T("images_per_s", "F1")} | {ratio} |");
        Console.WriteLine($"| ms per batch (median) | {ms:F2} | {T("ms", "F2")} | |");
        Console.WriteLine($"| pre-processing ms | {(double)o["pre_ms"]:F2} | {T("pre_ms", "F2")} | |");
        Console.WriteLine($"| network ms | {(double)o["network_ms"]:F2} | {T("network_ms", "F2")} | |");
        Console.WriteLine($"| post-processing ms | {(double)o["post_ms"]:F2} | {T("post_ms", "F2")} | |");
        Console.WriteLine($"| ms incl. host-to-device upload | {(double)o["ms_with_upload"]:F2} | | |");
        Console.WriteLine($"| detections in the batch | {o["detections"]} | {T("detections", "F0")} | |");
    }

    private static int Count(IReadOnlyList<Osprey.Detection.Boxes.DetectedObject>[] d)
    {
        int n = 0;
        foreach (var x in d) n += x.Count;
        return n;
    }

    private static double Median(List<double> v)
    {
        v.Sort();
        return v.Count == 0 ? double.NaN : v[v.Count / 2];
    }

    private static int Int(string s) => int.Parse(s, CultureInfo.InvariantCulture);
}
