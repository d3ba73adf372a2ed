using System.CommandLine;
using System.Globalization;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Spectre.Console;

namespace Osprey.Cli.Commands;

/// <summary>
/// `osprey doctor`: runs every GPU op on small seeded random inputs and compares it with the CPU backend,
/// printing pass/fail and the max error per op. Exits 1 if any op fails, 2 when no GPU can be used.
/// </summary>
public static class DoctorCommand
{
    private sealed record Check(string Op, DType DType, Func<Device, Tensor> Run);

    public static Command Create()
    {
        var device = new Option<int>("--device") { Description = "CUDA device index", DefaultValueFactory = _ => 0 };
        var cmd = new Command("doctor", "Check every GPU kernel against the CPU backend on small random inputs") { device };
        cmd.SetAction(r => Run(r.GetValue(device)));
        return cmd;
    }

    private static int Run(int index)
    {
        if (!CudaBackend.IsAvailable(out string reason))
        {
            AnsiConsole.MarkupLine($"[red]no CUDA GPU available[/]: {Markup.Escape(reason)}");
            AnsiConsole.MarkupLine("osprey doctor checks GPU kernels; on this machine only the CPU backend runs.");
            return 2;
        }
        var gpu = Device.Cuda(index);
        IBackend backend;
        try { backend = BackendRegistry.Get(gpu); }
        catch (Osprey.Core.OspreyException e)
        {
            AnsiConsole.MarkupLine($"[red]cannot open {gpu}[/]: {Markup.Escape(e.Message)}");
            return 2;
        }
        AnsiConsole.MarkupLine($"osprey doctor: {Markup.Escape(backend.Name)} vs {Markup.Escape(BackendRegistry.Cpu.Name)}");
        var table = new Table().AddColumns("op", "dtype", "max abs error", "tolerance", "result").Border(TableBorder.Rounded);
        int failed = 0, total = 0;
        foreach (var c in Checks())
        {
            total++;
            var (tolA, tolR) = Tolerance(c.DType);
            string err, result;
            try
            {
                using var yg = c.Run(gpu);
                using var yc = c.Run(Device.Cpu);
                var (worst, ok) = Compare(yc, yg, tolA, tolR);
                err = worst.ToString("G3", CultureInfo.InvariantCulture);
                result = ok ? "[green]PASS[/]" : "[red]FAIL[/]";
                if (!ok) failed++;
            }
            catch (Exception e) when (e is Osprey.Core.OspreyException or NotImplementedException or NotSupportedException or ArgumentException)
            {
                failed++;
                err = "-";
                result = $"[red]FAIL[/] {Markup.Escape(e.GetType().Name)}: {Markup.Escape(Trim(e.Message))}";
            }
            table.AddRow(Markup.Escape(c.Op), c.DType.Name(), err, $"{tolA:G2} + {tolR:G2}·|x|", result);
        }
        AnsiConsole.Write(table);
        var (ncclTotal, ncclFailed) = DoctorNccl.Run(index);
        total += ncclTotal;
        failed += ncclFailed;
        AnsiConsole.MarkupLine(failed == 0 ? $"[green]all {total} GPU checks passed[/]" : $"[red]{failed} of {total} GPU checks failed[/]");
        return failed == 0 ? 0 : 1;
    }

    private static string Trim(string s) => s.Length > 120 ? s[..120] + "..." : s;

    private static (double Atol, double Rtol) Tolerance(DType t) => t switch
    {
        DType.Float32 => (1e-5, 1e-5),
        DType.Float16 => (1e-3, 2e-3),
        DType.BFloat16 => (1e-2, 1e-2),
        _ => (0, 0),
    };

    /// <summary>Max abs error and whether every element is within atol + rtol·|expected| (NaN only where expected is NaN).</summary>
    private static (double Worst, bool Ok) Compare(Tensor expected, Tensor actual, double atol, double rtol)
    {
        if (expected.Shape != actual.Shape) throw new ArgumentException($"shape {actual.Shape} on the GPU, {expected.Shape} on the CPU");
        var e = Values(expected);
        var a = Values(actual);
        double worst = 0;
        bool ok = true;
        for (int i = 0; i < e.Length; i++)
        {
            if (double.IsNaN(e[i]) || double.IsNaN(a[i])) { ok &= double.IsNaN(e[i]) && double.IsNaN(a[i]); continue; }
            double d = Math.Abs(a[i] - e[i]);
            if (double.IsInfinity(e[i])) { ok &= e[i] == a[i]; continue; }
            worst = Math.Max(worst, d);
            ok &= d <= atol + rtol * Math.Abs(e[i]);
        }
        return (worst, ok);
    }

    private static double[] Values(Tensor t) => t.DType switch
    {
        DType.Float32 => Array.ConvertAll(t.ToArray<float>(), v => (double)v),
        DType.Float16 => Array.ConvertAll(t.ToArray<Half>(), v => (double)v),
        DType.BFloat16 => Array.ConvertAll(t.ToArray<BFloat16>(), v => (double)v.ToFloat()),
        DType.Int8 => Array.ConvertAll(t.ToArray<sbyte>(), v => (double)v),
        DType.UInt8 => Array.ConvertAll(t.ToArray<byte>(), v => (double)v),
        DType.Int32 => Array.ConvertAll(t.ToArray<int>(), v => (double)v),
        DType.Int64 => Array.ConvertAll(t.ToArray<long>(), v => (double)v),
        _ => Array.ConvertAll(t.ToArray<bool>(), v => v ? 1.0 : 0.0),
    };

    /// <summary>Seeded input on a device: uniform in [lo, hi), stored as the dtype (whole numbers for integers).</summary>
    private static Tensor Input(Device d, DType t, int seed, int[] shape, double lo = -2, double hi = 2)
    {
        var rng = new Random(seed);
        var s = new Shape(shape);
        var v = new double[s.Numel];
        for (int i = 0; i < v.Length; i++) v[i] = lo + rng.NextDouble() * (hi - lo);
        using Tensor cpu = t switch
        {
            DType.Float32 => Tensor.FromSpan<float>(Array.ConvertAll(v, x => (float)x), s),
            DType.Float16 => Tensor.FromSpan<Half>(Array.ConvertAll(v, x => (Half)x), s),
            DType.BFloat16 => Tensor.FromSpan<BFloat16>(Array.ConvertAll(v, x => BFloat16.FromFloat((float)x)), s),
            DType.Int32 => Tensor.FromSpan<int>(Array.ConvertAll(v, x => (int)Math.Floor(x)), s),
            DType.Int64 => Tensor.FromSpan<long>(Array.ConvertAll(v, x => (long)Math.Floor(x)), s),
            DType.UInt8 => Tensor.FromSpan<byte>(Array.ConvertAll(v, x => (byte)Math.Floor(x)), s),
            _ => Tensor.FromSpan<bool>(Array.ConvertAll(v, x => x >= (lo + hi) / 2), s),
        };
        return Op.To(cpu, d);
    }

    private static IEnumerable<Check> Checks()
    {
        int[] s = [3, 37, 41];
        foreach (var t in new[] { DType.Float32, DType.Float16, DType.BFloat16 })
        {
            yield return new Check("copy (transpose)", t, d => { using var x = Input(d, t, 1, s); using var v = x.Transpose(0, 2); return Op.Contiguous(v); });
            yield return new Check("fill", t, d => Tensor.Full(new Shape(s), 0.75, t, d));
            yield return new Check($"cast float32 -> {t.Name()}", t, d => { using var x = Input(d, DType.Float32, 2, s); return Op.Cast(x, t); });
            yield return new Check($"cast {t.Name()} -> int32", DType.Int32, d => { using var x = Input(d, t, 3, s, -50, 50); return Op.Cast(x, DType.Int32); });
            foreach (UnaryKind k in Enum.GetValues<UnaryKind>())
            {
                var op = k == UnaryKind.Clamp ? UnaryOp.Clamp(-0.5f, 0.7f) : k == UnaryKind.LeakyRelu ? UnaryOp.LeakyRelu(0.1f) : (UnaryOp)k;
                bool pos = k is UnaryKind.Sqrt or UnaryKind.Log;
                yield return new Check($"unary {k.ToString().ToLowerInvariant()}", t, d => { using var x = Input(d, t, 10 + (int)k, s, pos ? 0.1 : -4, 4); return Op.Unary(op, x); });
            }
            foreach (BinaryOp k in Enum.GetValues<BinaryOp>())
            {
                bool pow = k == BinaryOp.Pow;
                yield return new Check($"binary {k.ToString().ToLowerInvariant()} (broadcast)", k >= BinaryOp.Eq ? DType.Bool : t, d =>
                {
                    using var a = Input(d, t, 40 + (int)k, s, pow ? 0.1 : -2, 2);
                    using var b = Input(d, t, 60 + (int)k, [37, 1], pow ? -2 : 0.5, 2);
                    return Op.Binary(k, a, b);
                });
            }
            yield return new Check("where", t, d =>
            {
                using var c = Input(d, DType.Bool, 80, [37, 41]);
                using var a = Input(d, t, 81, s);
                using var b = Input(d, t, 82, [41]);
                return Op.Where(c, a, b);
            });
            foreach (ReduceOp k in Enum.GetValues<ReduceOp>())
                yield return new Check($"reduce {k.ToString().ToLowerInvariant()} (axes 0,2)", t, d => { using var x = Input(d, t, 90 + (int)k, s); return Op.Reduce(k, x, [0, 2]); });
            yield return new Check("argmax (axis 1)", DType.Int64, d => { using var x = Input(d, t, 95, s); return Op.ArgMax(x, 1); });
            yield return new Check("softmax (axis -1)", t, d => { using var x = Input(d, t, 96, s); return Op.Softmax(x, -1); });
            yield return new Check("log_softmax (axis 1)", t, d => { using var x = Input(d, t, 97, s); return Op.LogSoftmax(x, 1); });
            yield return new Check("topk values (k=7)", t, d => { using var x = Input(d, t, 98, s); var (v, i) = Op.TopK(x, 7); i.Dispose(); return v; });
            yield return new Check("topk indices (k=7)", DType.Int64, d => { using var x = Input(d, t, 98, s); var (v, i) = Op.TopK(x, 7); v.Dispose(); return i; });
            yield return new Check("gather (axis 1)", t, d => { using var x = Input(d, t, 99, s); using var i = Input(d, DType.Int64, 100, [3, 5, 41], 0, 37); return Op.Gather(x, 1, i); });
            yield return new Check("index_select (axis 2)", t, d => { using var x = Input(d, t, 101, s); using var i = Input(d, DType.Int32, 102, [9], 0, 41); return Op.IndexSelect(x, 2, i); });
            foreach (var nhwc in new[] { false, true })
            {
                string f = nhwc ? "nhwc" : "nchw";
                var fmt = nhwc ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous;
                yield return new Check($"max_pool2d 3x3/2 ceil ({f})", t, d => { using var x0 = Input(d, t, 103, [2, 5, 17, 13]); using var x = Op.Contiguous(x0, fmt); return Op.MaxPool2d(x, Pool2dParams.Square(3, 2, 1, ceilMode: true)); });
                yield return new Check($"avg_pool2d 3x3/2 pad 1 ({f})", t, d => { using var x0 = Input(d, t, 104, [2, 5, 17, 13]); using var x = Op.Contiguous(x0, fmt); return Op.AvgPool2d(x, Pool2dParams.Square(3, 2, 1)); });
                yield return new Check($"resize nearest ({f})", t, d => { using var x0 = Input(d, t, 105, [2, 5, 9, 7]); using var x = Op.Contiguous(x0, fmt); return Op.Resize(x, 20, 11, ResizeMode.Nearest); });
                yield return new Check($"resize bilinear ({f})", t, d => { using var x0 = Input(d, t, 106, [2, 5, 9, 7]); using var x = Op.Contiguous(x0, fmt); return Op.Resize(x, 20, 11, ResizeMode.Bilinear); });
                yield return new Check($"conv2d 3x3 + bias + relu ({f})", t, d =>
                {
                    using var x0 = Input(d, t, 107, [2, 8, 15, 11]);
                    using var x = Op.Contiguous(x0, fmt);
                    using var w = Input(d, t, 108, [16, 8, 3, 3], -0.3, 0.3);
                    using var b = Input(d, t, 109, [16]);
                    return Op.Conv2d(x, w, Conv2dParams.Square(1, 1), new Epilogue(b, Activation: UnaryKind.Relu));
                });
            }
            yield return new Check("matmul [5,33,47] @ [47,29] + bias", t, d =>
            {
                using var a = Input(d, t, 110, [5, 33, 47], -0.5, 0.5);
                using var b = Input(d, t, 111, [47, 29], -0.5, 0.5);
                using var bias = Input(d, t, 112, [29]);
                return Op.MatMul(a, b, epilogue: new Epilogue(bias));
            });
        }
        foreach (var t in new[] { DType.Int32, DType.Int64, DType.UInt8 })
        {
            yield return new Check("binary add (broadcast)", t, d => { using var a = Input(d, t, 120, s, 0, 100); using var b = Input(d, t, 121, [41], 0, 100); return Op.Add(a, b); });
            yield return new Check("binary gt", DType.Bool, d => { using var a = Input(d, t, 122, s, 0, 9); using var b = Input(d, t, 123, s, 0, 9); return Op.Binary(BinaryOp.Gt, a, b); });
            yield return new Check("reduce sum (axis 1)", t == DType.UInt8 ? DType.UInt8 : t, d => { using var x = Input(d, t, 124, s, 0, 5); return Op.Sum(x, [1]); });
            yield return new Check("cast -> float32", DType.Float32, d => { using var x = Input(d, t, 125, s, 0, 100); return Op.Cast(x, DType.Float32); });
        }
    }
}
