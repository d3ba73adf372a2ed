using System.Diagnostics;
using System.Globalization;
using Osprey.Core.Autograd;
using Osprey.Core.IO;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Models;

namespace Osprey.Bench;

/// <summary>
/// `Osprey.Bench autograd [--batch N] [--size H W] [--runs N] [--no-torch]`: one training step's compute of
/// RetinaNet-R18-FPN on the CPU backend (forward with the tape, loss = sum of squared head outputs, backward
/// into every convolution's weight and bias) beside the forward alone, and the same in PyTorch
/// (bench/cpu/torch_autograd.py, torchvision's model with frozen batch norm) in the same invocation. Median of the runs.
/// </summary>
internal static class AutogradBench
{
    public static int Run(string[] args)
    {
        int batch = 1, h = 256, w = 256, runs = 3;
        bool torch = true;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--batch" when i + 1 < args.Length: batch = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--size" when i + 2 < args.Length:
                    h = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    w = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--runs" when i + 1 < args.Length: runs = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--no-torch": torch = false; break;
                default:
                    Console.Error.WriteLine($"autograd: unknown or incomplete option '{args[i]}'");
                    return 2;
            }
        }
        using var model = new RetinaNet("retinanet_resnet18_fpn", 18);
        using (var sd = RandomWeights(model.Parameters.Expected)) model.Load(sd, "random", Device.Cpu);
        var rng = new Random(1);
        var pixels = new float[(long)batch * 3 * h * w];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (float)(rng.NextDouble() * 2 - 1);
        using var image = Tensor.FromSpan<float>(pixels, new Shape(batch, 3, h, w));
        var parameters = model.Parameters.Layers.SelectMany(c => new[] { new Parameter(c.Weight!, c.Name + ".weight", false), new Parameter(c.Bias!, c.Name + ".bias", false) }).ToArray();

        double forward = Median(runs, () => { using var o = model.Forward(image); });
        double step = Median(runs, () =>
        {
            using (var tape = new GradTape(parameters))
            {
                using var o = model.Forward(image);
                using var c2 = Op.Mul(o.ClassLogits, o.ClassLogits);
                using var r2 = Op.Mul(o.BoxRegression, o.BoxRegression);
                using var lc = Op.Sum(c2);
                using var lr = Op.Sum(r2);
                using var loss = Op.Add(lc, lr);
                tape.Backward(loss);
            }
            foreach (var p in parameters) p.ZeroGrad();
        });
        Console.WriteLine($"osprey autograd bench: RetinaNet-R18-FPN, batch {batch}, {h}x{w}, {Environment.ProcessorCount} threads, median of {runs}");
        Console.WriteLine($"  osprey  forward {forward * 1e3,8:F0} ms   forward+backward {step * 1e3,8:F0} ms");
        if (torch)
        {
            var psi = new ProcessStartInfo("/usr/bin/python3", $"bench/cpu/torch_autograd.py --batch {batch} --size {h} {w} --runs {runs}") { RedirectStandardOutput = true };
            using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start /usr/bin/python3");
            string line = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            if (p.ExitCode != 0) { Console.Error.WriteLine($"torch_autograd.py exited with {p.ExitCode}"); return 1; }
            Console.WriteLine($"  torch   {line}");
        }
        return 0;
    }

    private static double Median(int runs, Action step)
    {
        step(); // warm-up
        var t = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            step();
            t[i] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        Array.Sort(t);
        return t[runs / 2];
    }

    /// <summary>Uniform(-b, b) convolution weights with b = sqrt(3 / fan_in), identity batch norms, small biases.</summary>
    private static StateDict RandomWeights(IReadOnlyDictionary<string, Shape> expected)
    {
        var sd = new StateDict();
        var rng = new Random(7);
        foreach (var (name, shape) in expected)
        {
            var v = new float[shape.Numel];
            float bound = shape.Rank >= 2 ? (float)Math.Sqrt(3.0 / (shape.Numel / shape[0])) : 0.1f;
            for (int i = 0; i < v.Length; i++) v[i] = (float)(rng.NextDouble() * 2 - 1) * bound;
            if (name.EndsWith("running_var", StringComparison.Ordinal) || (name.Contains(".bn", StringComparison.Ordinal) && name.EndsWith(".weight", StringComparison.Ordinal)))
                Array.Fill(v, 1f);
            sd.Add(name, Tensor.FromSpan<float>(v, shape));
        }
        return sd;
    }
}
