using System.Globalization;
using System.Text.Json;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Cuda.Runtime;

namespace Osprey.Bench;

/// <summary>
/// `gpu-libs`: cuBLASLt GEMM (8192³ fp16/bf16/fp32/tf32) and cuDNN convolution for each distinct ResNet-50
/// layer shape (batch 64, fp16, NHWC), timed exactly as bench/gpu/torch_libs.py times PyTorch: warm-up, then
/// 25 samples of CUDA events around REPS back-to-back calls (REPS so a sample lasts about 2 ms); the median
/// per-call time is reported. Inputs are seeded random values, never zeros. Prints one JSON object per case.
/// Usage: gpu-libs [--convs bench/gpu/resnet50_convs.json] [--gemm 8192] [--out file.jsonl]
/// </summary>
internal static class GpuLibsBench
{
    private const int Samples = 25;

    public static int Run(string[] args)
    {
        string convs = "bench/gpu/resnet50_convs.json", output = "";
        int gemm = 8192;
        bool tf32 = false;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--convs": convs = args[++i]; break;
                case "--gemm": gemm = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--out": output = args[++i]; break;
                case "--tf32": tf32 = true; break;
                default: throw new ArgumentException($"gpu-libs: unknown argument '{args[i]}'");
            }
        }
        var lines = new List<string>();
        void Emit(object row)
        {
            string line = JsonSerializer.Serialize(row);
            lines.Add(line);
            Console.WriteLine(line);
        }

        // TF32 is a per-device option fixed when the device opens, so `--tf32` runs only the TF32 GEMM, in its own process
        CudaBackend.Register(new CudaMathOptions(AllowTf32: tf32));
        var backend = (CudaBackend)BackendRegistry.Get(Device.Cuda(0));
        if (!tf32) Emit(new Dictionary<string, object> { ["case"] = "meta", ["device"] = backend.Name, ["osprey"] = "gpu-libs" });

        double flops = 2.0 * gemm * gemm * gemm;
        var gemms = tf32 ? new[] { ("gemm tf32", DType.Float32) }
            : new[] { ("gemm fp16", DType.Float16), ("gemm bf16", DType.BFloat16), ("gemm fp32", DType.Float32) };
        foreach (var (name, dtype) in gemms)
        {
            using var a = RandomTensor(backend, new Shape(gemm, gemm), dtype, MemoryFormat.Contiguous, 1, 1f);
            using var b = RandomTensor(backend, new Shape(gemm, gemm), dtype, MemoryFormat.Contiguous, 2, 1f);
            var (ms, reps) = Time(backend, () => { using var y = Op.MatMul(a, b); });
            Emit(Row($"{name} {gemm}^3", ms, flops, reps));
        }
        if (tf32)
        {
            if (output.Length > 0) File.AppendAllLines(output, lines);
            return 0;
        }

        using var spec = JsonDocument.Parse(File.ReadAllText(convs));
        int batch = spec.RootElement.GetProperty("batch").GetInt32();
        foreach (var c in spec.RootElement.GetProperty("convs").EnumerateArray())
        {
            string name = c.GetProperty("name").GetString()!;
            int ci = c.GetProperty("c").GetInt32(), h = c.GetProperty("h").GetInt32(), o = c.GetProperty("o").GetInt32();
            int k = c.GetProperty("k").GetInt32(), s = c.GetProperty("s").GetInt32(), pad = c.GetProperty("p").GetInt32();
            int count = c.GetProperty("count").GetInt32();
            var p = Conv2dParams.Square(s, pad);
            using var x = RandomTensor(backend, new Shape(batch, ci, h, h), DType.Float16, MemoryFormat.ChannelsLast, 3, 1f);
            using var w = RandomTensor(backend, new Shape(o, ci, k, k), DType.Float16, MemoryFormat.ChannelsLast, 4, 1f / MathF.Sqrt(ci * k * k));
            int oh = p.OutH(h, k);
            double fl = 2.0 * batch * o * oh * oh * ci * k * k;
            var (ms, reps) = Time(backend, () => { using var y = Op.Conv2d(x, w, p); });
            var row = Row("conv " + name, ms, fl, reps);
            row["count"] = count;
            if (backend.ConvChoiceFor(x, w, p) is { } choice)
            {
                row["algo"] = choice.Engine;
                row["workspace_mib"] = Math.Round(choice.WorkspaceBytes / 1048576.0, 2);
                row["cudnn_find_ms"] = Math.Round(choice.MeasuredMs, 4);
            }
            Emit(row);
        }
        if (output.Length > 0) File.WriteAllLines(output, lines);
        return 0;
    }

    private static Dictionary<string, object> Row(string name, double ms, double flops, int reps) => new()
    {
        ["case"] = name,
        ["ms"] = ms,
        ["tflops"] = flops / ms / 1e9,
        ["reps"] = reps,
    };

    /// <summary>Median per-call milliseconds over <see cref="Samples"/> event-timed samples, after warm-up.</summary>
    private static (double Ms, int Reps) Time(CudaBackend backend, Action call)
    {
        for (int i = 0; i < 3; i++) call();
        backend.Synchronize();
        using var start = new CudaEvent();
        using var end = new CudaEvent();
        double Sample(int reps)
        {
            start.Record(backend.Stream);
            for (int r = 0; r < reps; r++) call();
            end.Record(backend.Stream);
            end.Synchronize();
            return CudaEvent.Elapsed(start, end);
        }
        double one = Math.Max(Sample(1), 1e-3);
        int reps = (int)Math.Clamp(2.0 / one, 1, 200);
        var times = new double[Samples];
        for (int s = 0; s < Samples; s++) times[s] = Sample(reps) / reps;
        Array.Sort(times);
        return (times[Samples / 2], reps);
    }

    /// <summary>
    /// Seeded normal-ish values (sum of four uniforms, unit variance) uploaded in the dtype. A channels_last
    /// tensor is uploaded as [N, H, W, C] and permuted to logical [N, C, H, W] (a view: no GPU copy).
    /// </summary>
    private static Tensor RandomTensor(IBackend backend, Shape shape, DType dtype, MemoryFormat format, int seed, float scale)
    {
        var upload = format == MemoryFormat.ChannelsLast ? new Shape(shape[0], shape[2], shape[3], shape[1]) : shape;
        long n = shape.Numel;
        ulong state = 0x9E3779B97F4A7C15UL * (ulong)(seed + 1);
        float Next()
        {
            float sum = 0;
            for (int i = 0; i < 4; i++)
            {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                sum += (state >> 40) * (1f / (1 << 24));
            }
            return (sum - 2f) * 1.7320508f * scale;
        }
        Tensor t;
        switch (dtype)
        {
            case DType.Float16:
            {
                var v = new Half[n];
                for (long i = 0; i < n; i++) v[i] = (Half)Next();
                t = Tensor.FromSpan<Half>(v, upload, backend.Device);
                break;
            }
            case DType.BFloat16:
            {
                var v = new BFloat16[n];
                for (long i = 0; i < n; i++) v[i] = BFloat16.FromFloat(Next());
                t = Tensor.FromSpan<BFloat16>(v, upload, backend.Device);
                break;
            }
            default:
            {
                var v = new float[n];
                for (long i = 0; i < n; i++) v[i] = Next();
                t = Tensor.FromSpan<float>(v, upload, backend.Device);
                break;
            }
        }
        if (format == MemoryFormat.Contiguous) return t;
        using (t) return t.Permute(0, 3, 1, 2);
    }
}
