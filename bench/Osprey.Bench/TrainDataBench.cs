using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Osprey.Core.Tensors;
using Osprey.Detection.Models;
using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Loop;
using Osprey.Vision.Imaging;
using Osprey.Vision.Transforms;

namespace Osprey.Bench;

/// <summary>
/// The CPU cost of `osprey train`'s data pipeline on real JPEGs, stage by stage in ODTK's order (decode, resize jitter, IoU crop,
/// rotate90, flip, colour jitter, then the collate's host normalisation and the whole CPU collate), for RetinaNet at ODTK's
/// jitter 640-1024 and for SSD300; then the whole <see cref="DataLoader{T}"/> with 1 and 2 workers, and the CPU cores per GPU
/// the pipeline needs to keep up with the H100 training rates of BENCHMARKS.md. Stages are timed one at a time on this thread
/// (wall and this thread's CPU time, which other processes on a shared machine do not inflate); medians over the passes.
/// </summary>
public static partial class TrainDataBench
{
    /// <summary>H100 amp training images/s at d2de960 (BENCHMARKS.md, session 4; pre-collated batches, no data loader).</summary>
    private const double RetinaNetRate = 120.6, SsdRate = 446.5;

    private static readonly string[] Stages = ["decode", "resize jitter", "iou crop", "rotate90", "flip", "colour jitter", "host normalise", "collate (CPU)"];

    /// <summary>One pipeline: which stages run and how often (flip: its probability), the options and the network transform.</summary>
    private sealed record Config(string Name, TrainOptions Options, double[] Weight, double GpuRate);

    public static int Run(string[] args)
    {
        string? data = null;
        int passes = 5, count = 128;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--data" when i + 1 < args.Length: data = args[++i]; break;
                case "--passes" when i + 1 < args.Length: passes = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--images" when i + 1 < args.Length: count = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"train-data: unknown or incomplete option '{args[i]}'"); return 2;
            }
        }
        if (data is null) { Console.Error.WriteLine("train-data: give --data COCO128 (train2017/ and annotations/instances_train2017.json)"); return 2; }
        var set = TrainSetup.Dataset(Path.Combine(data, "annotations", "instances_train2017.json"), Path.Combine(data, "train2017"));
        count = Math.Min(count, set.Count);
        var color = new ColorRanges(0.4, 0.4, 0.4, 0.1);
        Config[] configs =
        [
            new("retinanet_resnet50_fpn, ODTK --jitter 640 1024 --flip 0.5 --color 0.4 0.4 0.4 0.1 (batch 8)",
                new TrainOptions { Architecture = "retinanet_resnet50_fpn", BatchSize = 8, JitterMin = 640, JitterMax = 1024, MaxSize = 1333, Color = color },
                [1, 1, 0, 0, 0.5, 1, 1, 1], RetinaNetRate),
            new("ssd300_vgg16, --crop --flip 0.5 --color 0.4 0.4 0.4 0.1 (batch 64)",
                new TrainOptions { Architecture = "ssd300_vgg16", BatchSize = 64, Crop = true, Color = color },
                [1, 0, 1, 0, 0.5, 1, 1, 1], SsdRate),
        ];
        Console.WriteLine($"train-data: {count} coco128 images, {passes} passes, {Environment.ProcessorCount} cores, load {LoadAverage()}; " +
            "ms per image (median over passes; a stage's cost when it runs, flip included though it runs with p 0.5)");
        foreach (var c in configs) Measure(c, set, count, passes);
        return 0;
    }

    private static void Measure(Config c, CocoDetectionDataset set, int count, int passes)
    {
        var arch = Architectures.Get(c.Options.Architecture);
        var pre = arch.Family == DetectorFamily.Ssd
            ? new Preprocessor(arch.Resize, arch.Normalization, Device.Cpu)
            : new Preprocessor(TrainAugmentation.NetworkResize(c.Options), arch.Normalization, Device.Cpu);
        var augment = TrainAugmentation.For(c.Options);
        int n = Stages.Length;
        var wall = new double[n, passes];
        var cpu = new double[n, passes];
        var partCpu = new double[2 * ColourPartNames.Length, passes];
        for (int p = 0; p < passes; p++)
        {
            var batch = new List<DetectionSample>(c.Options.BatchSize);
            for (int i = 0; i < count; i++)
            {
                var rng = new Random(p * 100_003 + i);
                var s = Time(wall, cpu, 0, p, () => set.Load(i));
                if (c.Weight[1] > 0) s = Time(wall, cpu, 1, p, () => Augment.ResizeShorterSide(s, rng.Next(augment.JitterMin, augment.JitterMax + 1), augment.MaxSize));
                var cropped = Time(wall, cpu, 2, p, () => Augment.IouCrop(s, rng));
                Time(wall, cpu, 3, p, () => Augment.Rotate90(s, rng.Next(4)));
                if (c.Weight[2] > 0) s = cropped;
                s = Time(wall, cpu, 4, p, () => Augment.FlipHorizontal(s));
                Time(wall, cpu, 5, p, () => { ColorJitter.Apply(s.Image, augment, rng); return 0; });
                Time(wall, cpu, 6, p, () => { pre.Normalize(s.Image).Dispose(); return 0; });
                ColourParts(partCpu, p, s.Image);
                batch.Add(s);
                if (batch.Count == c.Options.BatchSize || i == count - 1)
                {
                    // the whole collate is multithreaded on the CPU device: process CPU time for it
                    var (w0, c0) = (Stopwatch.GetTimestamp(), ProcessCpuMs());
                    TrainingBatch.Collate(batch, pre).Dispose();
                    wall[7, p] += Stopwatch.GetElapsedTime(w0).TotalMilliseconds;
                    cpu[7, p] += ProcessCpuMs() - c0;
                    batch.Clear();
                }
            }
        }
        Console.WriteLine();
        Console.WriteLine(c.Name);
        Console.WriteLine("| stage | runs per image | wall ms/image | CPU ms/image |");
        Console.WriteLine("|---|---:|---:|---:|");
        double loaderCpu = 0, hostCpu = 0;
        for (int k = 0; k < n; k++)
        {
            double w = Median(wall, k, passes) / count, t = Median(cpu, k, passes) / count;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {Stages[k]} | {c.Weight[k]:0.#} | {w:F2} | {t:F2} |"));
            if (k <= 5) loaderCpu += c.Weight[k] * t;
            if (k == 6) hostCpu = t;
        }
        Console.WriteLine("colour jitter parts at fixed factors (brightness 1.2, contrast 0.8, saturation 1.3, hue +0.05), CPU ms/image: " +
            string.Join(", ", ColourPartNames.Select((name, k) => string.Create(CultureInfo.InvariantCulture,
                $"{name} {Median(partCpu, 2 * k, passes) / count:F2} (scalar reference {Median(partCpu, 2 * k + 1, passes) / count:F2})"))));
        var (rate1, cpu1) = Loader(set, count, augment, c.Options.BatchSize, 1);
        var (rate2, cpu2) = Loader(set, count, augment, c.Options.BatchSize, 2);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"loader (decode + augment, weighted): {loaderCpu:F2} CPU ms/image; DataLoader 1 worker {rate1:F1} images/s ({cpu1:F2} CPU ms/image), 2 workers {rate2:F1} images/s ({cpu2:F2} CPU ms/image)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"to keep up with the H100 at {c.GpuRate} images/s (amp): {c.GpuRate * loaderCpu / 1000:F1} cores for the loader workers, " +
            $"+ {c.GpuRate * hostCpu / 1000:F1} for the training thread's host normalisation = {c.GpuRate * (loaderCpu + hostCpu) / 1000:F1} cores per GPU"));
    }

    private static readonly string[] ColourPartNames = ["brightness", "contrast", "saturation", "hue"];

    /// <summary>Each colour jitter part on a copy of <paramref name="image"/>, <see cref="ColorJitter"/>'s fast path and the scalar
    /// <see cref="ColorJitterReference"/> (thread CPU ms into rows 2k and 2k + 1).</summary>
    private static void ColourParts(double[,] cpu, int pass, RgbImage image)
    {
        var wall = new double[cpu.GetLength(0), cpu.GetLength(1)];
        var a = new RgbImage(image.Width, image.Height);
        var b = new RgbImage(image.Width, image.Height);
        image.Pixels.CopyTo(a.Pixels, 0);
        image.Pixels.CopyTo(b.Pixels, 0);
        Time(wall, cpu, 0, pass, () => { ColorJitter.Brightness(a, 1.2); return 0; });
        Time(wall, cpu, 1, pass, () => { ColorJitterReference.Brightness(b.Pixels, 1.2); return 0; });
        Time(wall, cpu, 2, pass, () => { ColorJitter.Contrast(a, 0.8); return 0; });
        Time(wall, cpu, 3, pass, () => { ColorJitterReference.Contrast(b.Pixels, 0.8); return 0; });
        Time(wall, cpu, 4, pass, () => { ColorJitter.Saturation(a, 1.3); return 0; });
        Time(wall, cpu, 5, pass, () => { ColorJitterReference.Saturation(b.Pixels, 1.3); return 0; });
        Time(wall, cpu, 6, pass, () => { ColorJitter.Hue(a, 0.05); return 0; });
        Time(wall, cpu, 7, pass, () => { ColorJitterReference.Hue(b.Pixels, 0.05); return 0; });
        if (!a.Pixels.AsSpan().SequenceEqual(b.Pixels)) throw new InvalidOperationException("train-data: the fast colour jitter differs from the scalar reference");
    }

    /// <summary>One epoch of the loader over <paramref name="count"/> images: images/s (wall) and process CPU ms per image.</summary>
    private static (double Rate, double CpuMs) Loader(CocoDetectionDataset set, int count, AugmentOptions augment, int batch, int workers)
    {
        var loader = new DataLoader<DetectionSample>(count, (i, rng) => Augment.Apply(set.Load(i), augment, rng),
            new LoaderOptions(batch, workers, Prefetch: 4, Shuffle: true, Seed: 1));
        var (w0, c0) = (Stopwatch.GetTimestamp(), ProcessCpuMs());
        int images = 0;
        foreach (var b in loader.Epoch(0)) images += b.Length;
        double s = Stopwatch.GetElapsedTime(w0).TotalSeconds;
        return (images / s, (ProcessCpuMs() - c0) / images);
    }

    private static T Time<T>(double[,] wall, double[,] cpu, int stage, int pass, Func<T> f)
    {
        long w0 = Stopwatch.GetTimestamp();
        double c0 = ThreadCpuMs();
        var r = f();
        cpu[stage, pass] += ThreadCpuMs() - c0;
        wall[stage, pass] += Stopwatch.GetElapsedTime(w0).TotalMilliseconds;
        return r;
    }

    private static double Median(double[,] v, int k, int passes)
    {
        var row = new double[passes];
        for (int p = 0; p < passes; p++) row[p] = v[k, p];
        Array.Sort(row);
        return passes % 2 == 1 ? row[passes / 2] : 0.5 * (row[passes / 2 - 1] + row[passes / 2]);
    }

    private static double ProcessCpuMs()
    {
        using var proc = Process.GetCurrentProcess();
        return proc.TotalProcessorTime.TotalMilliseconds;
    }

    /// <summary>This thread's CPU time (Linux CLOCK_THREAD_CPUTIME_ID, nanosecond resolution; /proc's process time counts 10 ms ticks).</summary>
    private static double ThreadCpuMs()
    {
        if (!OperatingSystem.IsLinux()) return ProcessCpuMs();
        if (Native.ClockGetTime(3, out var ts) != 0) throw new InvalidOperationException("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        return ts.Seconds * 1e3 + ts.Nanoseconds * 1e-6;
    }

    private static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
        catch (IOException) { return "?"; }
    }

    private static partial class Native
    {
        [StructLayout(LayoutKind.Sequential)]
        public struct TimeSpec
        {
            public long Seconds;
            public long Nanoseconds;
        }

        [LibraryImport("libc", EntryPoint = "clock_gettime")]
        public static partial int ClockGetTime(int clock, out TimeSpec time);
    }
}
