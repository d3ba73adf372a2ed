using System.Diagnostics;
using System.Globalization;
using Osprey.Detection;
using Osprey.Vision.Codecs;
using Osprey.Vision.Transforms;

// Detection pipeline stages on the CPU, one image at a time. Usage:
//   dotnet run -c Release --project bench/Osprey.Bench.Detect -- ARCH WEIGHTS IMAGE [--min N] [--max N] [--runs N]
// Weights: bench/detect/make_weights.py writes formula weights for any architecture; bench/detect/torch_detect.py
// times torchvision on the same weights, image and size.
if (args.Length < 3)
{
    Console.Error.WriteLine("usage: Osprey.Bench.Detect ARCH WEIGHTS IMAGE [--min N] [--max N] [--runs N]");
    return 2;
}
int min = 800, max = 1333, runs = 5;
for (int i = 3; i + 1 < args.Length; i += 2)
{
    int v = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
    switch (args[i])
    {
        case "--min": min = v; break;
        case "--max": max = v; break;
        case "--runs": runs = v; break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
    }
}
var arch = Osprey.Detection.Models.Architectures.Get(args[0]);
var resize = arch.Resize.Kind == ResizeKind.Fixed ? arch.Resize : arch.Resize with { MinSize = min, MaxSize = max };
using var detector = Detector.Load(arch.Name, args[1], new DetectorOptions { Resize = resize });
var bytes = File.ReadAllBytes(args[2]);
var times = new Dictionary<string, List<double>> { ["decode"] = [], ["network (incl. preprocess)"] = [], ["postprocess"] = [], ["total"] = [] };
int count = 0;
for (int r = 0; r <= runs; r++)   // run 0 is warm-up
{
    var total = Stopwatch.StartNew();
    var sw = Stopwatch.StartNew();
    var img = ImageDecoder.Decode(bytes, args[2]);
    double decode = sw.Elapsed.TotalMilliseconds;
    sw.Restart();
    var (batch, heads) = detector.RunNetwork([img], keepFeatures: false);
    double net = sw.Elapsed.TotalMilliseconds;
    sw.Restart();
    using (batch)
    using (heads)
        count = detector.PostProcessBatch(heads, batch)[0].Count;
    double post = sw.Elapsed.TotalMilliseconds;
    if (r == 0) continue;
    times["decode"].Add(decode);
    times["network (incl. preprocess)"].Add(net);
    times["postprocess"].Add(post);
    times["total"].Add(total.Elapsed.TotalMilliseconds);
}
Console.WriteLine($"osprey {arch.Name} on {Environment.ProcessorCount} CPU threads, input {resize}, {count} detections; median of {runs} runs:");
foreach (var (k, v) in times)
{
    v.Sort();
    Console.WriteLine($"  {k,-28} {v[v.Count / 2],10:F1} ms");
}
return 0;
