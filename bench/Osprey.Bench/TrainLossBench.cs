using System.Diagnostics;
using System.Globalization;
using Osprey.Detection.Boxes;
using Osprey.Detection.Training;
using Osprey.Detection.Training.Losses;

namespace Osprey.Bench;

/// <summary>
/// Detection loss + gradient time on the CPU (matching, loss, closed-form gradients w.r.t. the head outputs) for
/// RetinaNet (batch 2, 800x1088 input, 91 classes, 10 boxes per image) and SSD300 (batch 32, 8732 boxes, 91 classes,
/// 5 boxes per image), next to torchvision's compute_loss + autograd backward (bench/train/torch_loss.py, same shapes).
/// </summary>
public static class TrainLossBench
{
    public static int Run(string[] args)
    {
        int runs = 5;
        bool torch = true;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--runs" && i + 1 < args.Length) runs = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--no-torch") torch = false;
            else { Console.Error.WriteLine($"train-loss: unknown option '{args[i]}'"); return 2; }
        }
        var grids = new ImageSize[] { new(100, 136), new(50, 68), new(25, 34), new(13, 17), new(7, 9) };
        float[] anchors = AnchorGenerator.RetinaNet().Generate(new ImageSize(800, 1088), grids);
        double retina = Time(runs, Setup(2, anchors, 91, 10, 1088, 800, out var rt, out var rc, out var rr),
            (gc, gb) => RetinaNetLoss.Compute(rc, rr, anchors, rt, 91, RetinaNetLossOptions.Torchvision, gc, gb));
        float[] priors = SsdPriors();
        double ssd = Time(runs, Setup(32, priors, 91, 5, 300, 300, out var st, out var sc, out var sr, firstLabel: 1),
            (gc, gb) => SsdLoss.Compute(sc, sr, priors, st, 91, SsdLossOptions.Torchvision, gc, gb));
        Console.WriteLine($"osprey  retinanet loss+grad (2 x {anchors.Length / 4} anchors x 91): {retina * 1e3:F1} ms");
        Console.WriteLine($"osprey  ssd300 loss+grad (32 x {priors.Length / 4} boxes x 91): {ssd * 1e3:F1} ms");
        if (torch)
        {
            string script = Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "train", "torch_loss.py");
            var psi = new ProcessStartInfo("/usr/bin/python3", [Path.GetFullPath(script), "--runs", runs.ToString(CultureInfo.InvariantCulture)]) { RedirectStandardOutput = true };
            using var p = Process.Start(psi)!;
            Console.Write(p.StandardOutput.ReadToEnd());
            p.WaitForExit();
        }
        return 0;
    }

    private static float[] SsdPriors()
    {
        var gen = DefaultBoxGenerator.Ssd300();
        var grids = new ImageSize[] { new(38, 38), new(19, 19), new(10, 10), new(5, 5), new(3, 3), new(1, 1) };
        var boxes = new float[gen.Count(grids) * 4];
        gen.Generate(new ImageSize(300, 300), grids, boxes);
        return boxes;
    }

    private static (float[] Cls, float[] Reg) Setup(int n, float[] anchors, int k, int objects, int w, int h,
        out DetectionTarget[] targets, out float[] cls, out float[] reg, int firstLabel = 0)
    {
        var rng = new Random(1);
        int a = anchors.Length / 4;
        cls = new float[(long)n * a * k];
        reg = new float[(long)n * a * 4];
        for (int i = 0; i < cls.Length; i++) cls[i] = (float)(rng.NextDouble() * 8 - 6);
        for (int i = 0; i < reg.Length; i++) reg[i] = (float)(rng.NextDouble() - 0.5);
        targets = new DetectionTarget[n];
        for (int i = 0; i < n; i++)
        {
            var b = new float[objects * 4];
            var l = new int[objects];
            for (int o = 0; o < objects; o++)
            {
                float bw = 20 + (float)rng.NextDouble() * w / 3, bh = 20 + (float)rng.NextDouble() * h / 3;
                float x = (float)rng.NextDouble() * (w - bw), y = (float)rng.NextDouble() * (h - bh);
                b[4 * o] = x; b[4 * o + 1] = y; b[4 * o + 2] = x + bw; b[4 * o + 3] = y + bh;
                l[o] = firstLabel + rng.Next(k - firstLabel);
            }
            targets[i] = new DetectionTarget(b, l);
        }
        return (cls, reg);
    }

    private static double Time(int runs, (float[] Cls, float[] Reg) io, Action<float[], float[]> body)
    {
        var gc = new float[io.Cls.Length];
        var gb = new float[io.Reg.Length];
        body(gc, gb);
        var times = new double[runs];
        for (int r = 0; r < runs; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            body(gc, gb);
            times[r] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        Array.Sort(times);
        return times[runs / 2];
    }
}
