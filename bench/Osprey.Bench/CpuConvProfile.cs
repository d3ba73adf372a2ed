using System.Diagnostics;
using System.Globalization;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Bench;

/// <summary>
/// Where a CPU ResNet-50 forward spends its time: each distinct convolution of the network (channels_last,
/// bias + ReLU epilogue) run alone, with wall and process CPU time per call and the count-weighted total.
/// CPU time is the figure to compare changes by on a shared machine.
/// </summary>
public static class CpuConvProfile
{
    // (cin, cout, k, stride, input H=W, count in ResNet-50)
    private static readonly (int Cin, int Cout, int K, int S, int H, int Count)[] Convs =
    [
        (3, 64, 7, 2, 224, 1),
        (64, 64, 1, 1, 56, 1), (64, 64, 3, 1, 56, 3), (64, 256, 1, 1, 56, 4), (256, 64, 1, 1, 56, 2),
        (256, 128, 1, 1, 56, 1), (128, 128, 3, 2, 56, 1), (128, 512, 1, 1, 28, 4), (256, 512, 1, 2, 56, 1),
        (512, 128, 1, 1, 28, 3), (128, 128, 3, 1, 28, 3),
        (512, 256, 1, 1, 28, 1), (256, 256, 3, 2, 28, 1), (256, 1024, 1, 1, 14, 6), (512, 1024, 1, 2, 28, 1),
        (1024, 256, 1, 1, 14, 5), (256, 256, 3, 1, 14, 5),
        (1024, 512, 1, 1, 14, 1), (512, 512, 3, 2, 14, 1), (512, 2048, 1, 1, 7, 3), (1024, 2048, 1, 2, 14, 1),
        (2048, 512, 1, 1, 7, 2), (512, 512, 3, 1, 7, 2),
    ];

    public static int Run(string[] args)
    {
        int batch = 1, reps = 5;
        string? only = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--batch" when i + 1 < args.Length: batch = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--reps" when i + 1 < args.Length: reps = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--only" when i + 1 < args.Length: only = args[++i]; break;
                default:
                    Console.Error.WriteLine($"cpu-convs: unknown or incomplete option '{args[i]}'");
                    return 2;
            }
        }
        var ci = CultureInfo.InvariantCulture;
        using var self = Process.GetCurrentProcess();
        double totalWall = 0, totalCpu = 0, totalFlops = 0;
        Console.WriteLine($"batch {batch}, {reps} reps per conv (after as many warm-up calls), load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        Console.WriteLine("conv                       count  wall-ms  cpu-ms  GFLOP/cpu-s  weighted cpu-ms");
        var rng = new Random(5);
        foreach (var (cin, cout, k, s, h, count) in Convs)
        {
            if (only is not null && only != string.Format(CultureInfo.InvariantCulture, "{0}-{1}-{2}-{3}-{4}", cin, cout, k, s, h)) continue;
            int pad = k / 2, oh = (h + 2 * pad - k) / s + 1;
            using var xc = Tensor.FromArray(ResNet50.Uniform(rng, batch * cin * h * h, 1), batch, cin, h, h);
            using var x = Op.Contiguous(xc, MemoryFormat.ChannelsLast);
            using var wc = Tensor.FromArray(ResNet50.Uniform(rng, cout * cin * k * k, 0.1f), cout, cin, k, k);
            using var w = Op.Contiguous(wc, MemoryFormat.ChannelsLast);
            using var b = Tensor.FromArray(ResNet50.Uniform(rng, cout, 0.1f), cout);
            var p = Conv2dParams.Square(s, pad);
            var epi = new Epilogue(b, null, UnaryKind.Relu);
            for (int r = 0; r < Math.Max(reps, 3); r++) Op.Conv2d(x, w, p, epi).Dispose();
            self.Refresh();
            var c0 = self.TotalProcessorTime;
            long t0 = Stopwatch.GetTimestamp();
            for (int r = 0; r < reps; r++) Op.Conv2d(x, w, p, epi).Dispose();
            double wall = Stopwatch.GetElapsedTime(t0).TotalMilliseconds / reps;
            self.Refresh();
            double cpu = (self.TotalProcessorTime - c0).TotalMilliseconds / reps;
            double flops = 2.0 * batch * oh * oh * cout * cin * k * k;
            totalWall += wall * count;
            totalCpu += cpu * count;
            totalFlops += flops * count;
            Console.WriteLine(string.Format(ci, "{0,4}->{1,4} k{2} s{3} {4,3}x{4,-3}  {5,5}  {6,7:F2}  {7,6:F2}  {8,11:F1}  {9,15:F1}",
                cin, cout, k, s, h, count, wall, cpu, flops / cpu / 1e6, cpu * count));
        }
        Console.WriteLine(string.Format(ci, "total convs: {0:F1} wall-ms, {1:F1} cpu-ms, {2:F1} GFLOP per CPU-second, load average {3}",
            totalWall, totalCpu, totalFlops / totalCpu / 1e6, File.ReadAllText("/proc/loadavg").Split(' ')[0]));
        return 0;
    }
}
