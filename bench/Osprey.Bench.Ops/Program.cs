// CPU element-wise/reduction throughput, the C# side of bench/ops_torch.py (same sizes, same metric).
// Run: dotnet run -c Release --project bench/Osprey.Bench.Ops [-- elements]
// "kernel" times the backend call into a preallocated output; "op" times Op.* (which allocates its output).
using System.Diagnostics;
using System.Globalization;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

int n = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 1 << 22;
var cpu = BackendRegistry.Cpu;
var rng = new Random(1);
var av = new float[n];
var bv = new float[n];
for (int i = 0; i < n; i++) { av[i] = (float)(rng.NextDouble() * 2 - 1); bv[i] = (float)(rng.NextDouble() * 2 - 1); }
using var a = Tensor.FromArray(av, n);
using var b = Tensor.FromArray(bv, n);
using var y = Tensor.Empty(new Shape(n), DType.Float32);
using var one = Tensor.Empty(new Shape(1), DType.Float32);
int side = (int)Math.Sqrt(n / 64.0);
using var img = Tensor.FromArray(av[..(64 * side * side)], 1, 64, side, side);
using var imgCl = Op.Contiguous(img, MemoryFormat.ChannelsLast);

Console.WriteLine($"Osprey CPU ops, {n:N0} float32 elements, {Environment.ProcessorCount} threads, {cpu.Name}");
Console.WriteLine($"{"op",-34} {"median ms",10} {"GB/s",8}");
Report("relu kernel", 2L * n * 4, () => cpu.Unary(UnaryKind.Relu, a, y));
Report("relu op (allocates)", 2L * n * 4, () => Op.Relu(a).Dispose());
Report("gelu kernel", 2L * n * 4, () => cpu.Unary(UnaryKind.Gelu, a, y));
Report("sigmoid kernel", 2L * n * 4, () => cpu.Unary(UnaryKind.Sigmoid, a, y));
Report("add kernel", 3L * n * 4, () => cpu.Binary(BinaryOp.Add, a, b, y));
Report("add op (allocates)", 3L * n * 4, () => Op.Add(a, b).Dispose());
Report("mul by scalar (broadcast) kernel", 2L * n * 4, () => { using var s = one.Expand(new Shape(n)); cpu.Binary(BinaryOp.Mul, a, s, y); });
Report("sum (all) kernel", 1L * n * 4, () => cpu.Reduce(ReduceOp.Sum, a, [0], one));
Report("exp kernel", 2L * n * 4, () => cpu.Unary(UnaryKind.Exp, a, y));
Report("max (all) kernel", 1L * n * 4, () => cpu.Reduce(ReduceOp.Max, a, [0], one));
Report("softmax rows of 1024 op", 2L * n * 4, () => { using var r = a.Reshape(n / 1024, 1024); Op.Softmax(r, -1).Dispose(); });
Report($"maxpool 3x3 s2 NCHW [1,64,{side},{side}] op", 4L * img.Numel * 5 / 4, () => Op.MaxPool2d(img, Pool2dParams.Square(3, 2, 1)).Dispose());
Report($"maxpool 3x3 s2 NHWC op", 4L * img.Numel * 5 / 4, () => Op.MaxPool2d(imgCl, Pool2dParams.Square(3, 2, 1)).Dispose());
Report($"bilinear x2 NCHW op", 4L * img.Numel * 5, () => Op.Resize(img, 2 * side, 2 * side, ResizeMode.Bilinear).Dispose());
Report($"bilinear x2 NHWC op", 4L * img.Numel * 5, () => Op.Resize(imgCl, 2 * side, 2 * side, ResizeMode.Bilinear).Dispose());

static void Report(string name, long bytes, Action body)
{
    for (int i = 0; i < 3; i++) body();
    var times = new double[15];
    for (int i = 0; i < times.Length; i++)
    {
        long t0 = Stopwatch.GetTimestamp();
        body();
        times[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
    }
    Array.Sort(times);
    double ms = times[times.Length / 2];
    Console.WriteLine($"{name,-34} {ms,10:F3} {bytes / ms / 1e6,8:F2}");
}
