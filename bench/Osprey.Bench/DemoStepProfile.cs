using System.Diagnostics;
using System.Globalization;
using Osprey.Core.Autograd;
using Osprey.Core.Tensors;
using Osprey.Detection.Boxes;
using Osprey.Detection.Models;
using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Loop;
using Osprey.Detection.Training.Losses;
using Osprey.Detection.Training.Optim;
using Osprey.Vision.Transforms;

namespace Osprey.Bench;

/// <summary>
/// Where a CPU training step of `osprey demo` spends its time: data (load + collate), forward, loss (matching + focal/L1
/// with gradients), backward (autograd through the convolutions), optimiser step. Wall and process CPU milliseconds per
/// step, averaged over the steps after a warm-up; the same phases as <see cref="Trainer.Step"/>. CPU time is the figure to
/// trust on a loaded machine: wall = CPU / cores only when the machine is otherwise idle.
/// </summary>
public static class DemoStepProfile
{
    public static int Run(string[] args)
    {
        string arch = "retinanet_tiny_fpn";
        int batch = 8, size = 128, steps = 10, warm = 2;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--arch" when i + 1 < args.Length: arch = args[++i]; break;
                case "--batch" when i + 1 < args.Length: batch = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--size" when i + 1 < args.Length: size = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--steps" when i + 1 < args.Length: steps = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"demo-step: unknown or incomplete option '{args[i]}'"); return 2;
            }
        }
        string dir = Path.Combine(Path.GetTempPath(), $"osprey-demo-step-{Environment.ProcessId}");
        try
        {
            var set = SyntheticShapes.Generate(dir, DemoPreset.Cpu.Data(batch * 2, 1));
            var data = TrainSetup.Dataset(set.AnnotationsPath, set.ImageDirectory);
            var a = Architectures.Get(arch);
            using var model = a.CreateFor(4);
            using (var init = ModelInit.Random(model, 0)) model.Load(init, "random", Device.Cpu);
            var ps = new List<Parameter>();
            foreach (var c in model.Parameters.Layers)
            {
                ps.Add(new Parameter(c.Weight!, c.Name + ".weight", ownsValue: false));
                ps.Add(new Parameter(c.Bias!, c.Name + ".bias", ownsValue: false));
            }
            long numel = ps.Sum(p => (long)p.Value.Shape.Numel);
            using var sgd = new Sgd(new SgdOptions(0.01));
            var pre = new Preprocessor(ResizePolicy.RetinaNetTorchvision with { MinSize = size, MaxSize = size * 2 }, a.Normalization, Device.Cpu);
            var gen = a.Anchors();
            var names = new[] { "data", "forward", "loss", "backward", "optimizer" };
            var wall = new double[5];
            var cpu = new double[5];
            var proc = Process.GetCurrentProcess();
            for (int s = 0; s < warm + steps; s++)
            {
                int k = 0;
                var sw = Stopwatch.StartNew();
                proc.Refresh();
                var c0 = proc.TotalProcessorTime;
                void Mark()
                {
                    proc.Refresh();
                    var c1 = proc.TotalProcessorTime;
                    if (s >= warm) { wall[k] += sw.Elapsed.TotalMilliseconds; cpu[k] += (c1 - c0).TotalMilliseconds; }
                    k++;
                    c0 = c1;
                    sw.Restart();
                }
                var samples = new DetectionSample[batch];
                for (int i = 0; i < batch; i++) samples[i] = data.Load((s * batch + i) % data.Count);
                using var b = TrainingBatch.Collate(samples, pre);
                Mark();
                using (var scope = new TensorScope())
                {
                    using var tape = new GradTape(ps);
                    using var heads = model.Forward(b.Images.Images);
                    Mark();
                    var x = b.Images.Images;
                    float[] anchors = gen.Generate(new ImageSize(x.Shape[2], x.Shape[3]), heads.Grids);
                    using var loss = HeadLoss.RetinaNet(heads.ClassLogits, heads.BoxRegression, anchors, b.Targets, RetinaNetLossOptions.Torchvision);
                    Mark();
                    tape.Backward([(heads.ClassLogits, loss.ClassGrad), (heads.BoxRegression, loss.BoxGrad)]);
                    Mark();
                }
                using (GradTape.NoGrad())
                using (new TensorScope())
                {
                    var pairs = ps.Select(p => new ParamGrad(p.Value, p.Grad!)).ToArray();
                    Gradients.ClipByGlobalNorm(pairs.Select(p => p.Grad).ToArray(), 10);
                    sgd.Step(pairs);
                }
                foreach (var p in ps) p.ZeroGrad();
                Mark();
            }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{arch}: {numel} parameters, batch {batch} at {size} px, {steps} steps after {warm} warm-up, {Environment.ProcessorCount} cores, load {LoadAverage()}"));
            double tw = 0, tc = 0;
            for (int i = 0; i < 5; i++)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {names[i],-10} wall {wall[i] / steps,8:F1} ms   cpu {cpu[i] / steps,8:F1} ms"));
                tw += wall[i]; tc += cpu[i];
            }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {"step",-10} wall {tw / steps,8:F1} ms   cpu {tc / steps,8:F1} ms"));
            return 0;
        }
        finally
        {
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }

    private static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
        catch (IOException) { return "?"; }
    }
}
