using System.Runtime.InteropServices;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Tests.Cuda;

/// <summary>A host copy of a tensor's values in logical row-major order, as doubles.</summary>
public sealed record Host(double[] D, int[] S)
{
    public long Numel => D.LongLength;
}

/// <summary>One GPU op check: seeded inputs built on any device, the op, and an independent host reference.</summary>
public sealed record OpCase(string Name, DType DType, Func<Device, Tensor[]> Inputs, Func<Tensor[], Tensor> Run, Func<Host[], Host> Reference);

/// <summary>Builds seeded inputs, reads tensors back as doubles and compares with per-dtype tolerances.</summary>
public static class GpuCheck
{
    /// <summary>float32 tight, float16 ~1e-3 relative, bfloat16 ~1e-2; integers and bools exact.</summary>
    public static (double Atol, double Rtol) Tolerance(DType t) => t switch
    {
        DType.Float32 => (1e-5, 1e-5),
        DType.Float16 => (1e-3, 2e-3),
        DType.BFloat16 => (1e-2, 1e-2),
        _ => (0, 0),
    };

    /// <summary>Seeded values in [lo, hi) stored as <paramref name="t"/> (integers: whole numbers; bool: about half true).</summary>
    public static Tensor Make(DType t, int[] dims, int seed, double lo = -1, double hi = 1, Device? device = null)
    {
        var shape = new Shape(dims);
        var rng = new Random(seed);
        int n = (int)shape.Numel;
        var v = new double[n];
        for (int i = 0; i < n; i++) v[i] = lo + rng.NextDouble() * (hi - lo);
        Tensor cpu = t switch
        {
            DType.Float32 => Tensor.FromSpan<float>(Array.ConvertAll(v, x => (float)x), shape),
            DType.Float16 => Tensor.FromSpan<Half>(Array.ConvertAll(v, x => (Half)x), shape),
            DType.BFloat16 => Tensor.FromSpan<BFloat16>(Array.ConvertAll(v, x => BFloat16.FromFloat((float)x)), shape),
            DType.Int8 => Tensor.FromSpan<sbyte>(Array.ConvertAll(v, x => (sbyte)Math.Floor(x)), shape),
            DType.UInt8 => Tensor.FromSpan<byte>(Array.ConvertAll(v, x => (byte)Math.Floor(x)), shape),
            DType.Int32 => Tensor.FromSpan<int>(Array.ConvertAll(v, x => (int)Math.Floor(x)), shape),
            DType.Int64 => Tensor.FromSpan<long>(Array.ConvertAll(v, x => (long)Math.Floor(x)), shape),
            DType.Bool => Tensor.FromSpan<bool>(Array.ConvertAll(v, x => x >= (lo + hi) / 2), shape),
            _ => throw new ArgumentOutOfRangeException(nameof(t)),
        };
        if (device is null || device == Device.Cpu) return cpu;
        using (cpu) return Op.To(cpu, device.Value);
    }

    /// <summary>Values in logical order as doubles (reads any dtype and layout; no op of the CPU backend beyond copies).</summary>
    public static Host Read(Tensor t)
    {
        double[] d = t.DType switch
        {
            DType.Float32 => Array.ConvertAll(t.ToArray<float>(), x => (double)x),
            DType.Float16 => Array.ConvertAll(t.ToArray<Half>(), x => (double)x),
            DType.BFloat16 => Array.ConvertAll(t.ToArray<BFloat16>(), x => (double)x.ToFloat()),
            DType.Int8 => Array.ConvertAll(t.ToArray<sbyte>(), x => (double)x),
            DType.UInt8 => Array.ConvertAll(t.ToArray<byte>(), x => (double)x),
            DType.Int32 => Array.ConvertAll(t.ToArray<int>(), x => (double)x),
            DType.Int64 => Array.ConvertAll(t.ToArray<long>(), x => (double)x),
            DType.Bool => Array.ConvertAll(t.ToArray<bool>(), x => x ? 1.0 : 0.0),
            _ => throw new ArgumentOutOfRangeException(nameof(t)),
        };
        return new Host(d, t.Shape.ToArray());
    }

    /// <summary>Checks actual against expected; the failure names the case, the first bad index and the max error.</summary>
    public static double Assert(Host expected, Host actual, DType t, string what)
    {
        if (!expected.S.AsSpan().SequenceEqual(actual.S))
            throw new Xunit.Sdk.XunitException($"{what}: shape [{string.Join(",", actual.S)}], expected [{string.Join(",", expected.S)}]");
        var (atol, rtol) = Tolerance(t);
        int bad = 0, first = -1;
        double worst = 0;
        for (int i = 0; i < expected.D.Length; i++)
        {
            double e = expected.D[i], a = actual.D[i];
            bool ok = double.IsNaN(e) ? double.IsNaN(a) : double.IsInfinity(e) ? e == a : !double.IsNaN(a) && Math.Abs(a - e) <= atol + rtol * Math.Abs(e);
            if (!double.IsNaN(e) && !double.IsNaN(a) && !double.IsInfinity(e)) worst = Math.Max(worst, Math.Abs(a - e));
            if (ok) continue;
            bad++;
            if (first < 0) first = i;
        }
        if (bad > 0)
            throw new Xunit.Sdk.XunitException($"{what}: {bad} of {expected.D.Length} elements differ; first at flat index {first}: got {actual.D[first]}, " +
                $"expected {expected.D[first]} ({t.Name()}: atol {atol}, rtol {rtol}; max abs error {worst})");
        return worst;
    }

    /// <summary>Runs a case on the GPU and compares with its host reference; returns the max abs error.</summary>
    public static double VsHost(OpCase c)
    {
        var inputs = c.Inputs(Gpu.Device);
        try
        {
            using var y = c.Run(inputs);
            var expected = c.Reference(Array.ConvertAll(inputs, Read));
            return Assert(expected, Read(y), c.DType, $"{c.Name} vs host reference");
        }
        finally { foreach (var t in inputs) t.Dispose(); }
    }

    /// <summary>Runs a case on the GPU and on the CPU backend and compares them; returns the max abs error.</summary>
    public static double VsCpu(OpCase c)
    {
        var gi = c.Inputs(Gpu.Device);
        var ci = c.Inputs(Device.Cpu);
        try
        {
            using var yg = c.Run(gi);
            using var yc = c.Run(ci);
            return Assert(Read(yc), Read(yg), c.DType, $"{c.Name} vs cpu backend");
        }
        finally
        {
            foreach (var t in gi) t.Dispose();
            foreach (var t in ci) t.Dispose();
        }
    }

    /// <summary>Runs every case, collecting all failures into one message.</summary>
    public static void All(IEnumerable<OpCase> cases, Func<OpCase, double> check)
    {
        var failures = new List<string>();
        int n = 0;
        foreach (var c in cases)
        {
            n++;
            try { check(c); }
            catch (Exception e) { failures.Add($"{c.Name}: {e.GetType().Name}: {e.Message}"); }
        }
        if (failures.Count > 0)
            throw new Xunit.Sdk.XunitException($"{failures.Count} of {n} cases failed:\n" + string.Join("\n", failures));
    }
}
