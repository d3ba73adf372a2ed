using System.Text.Json;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Tests.Support;

/// <summary>
/// Golden fixtures written by tools/golden_ops.py (format: tools/README.md). Inputs are regenerated
/// from their seed by <see cref="Generator"/>, the twin of the Python generator; outputs are raw.
/// </summary>
public static class Golden
{
    private static readonly Dictionary<string, Dictionary<string, JsonElement>> s_files = [];
    private static readonly Lock s_lock = new();

    public static string Dir => Path.Combine(AppContext.BaseDirectory, "Fixtures", "ops");

    private static Dictionary<string, JsonElement> File(string family)
    {
        lock (s_lock)
        {
            if (s_files.TryGetValue(family, out var f)) return f;
            using var doc = JsonDocument.Parse(System.IO.File.ReadAllText(Path.Combine(Dir, family + ".json")));
            var root = doc.RootElement.Clone();
            if (root.GetProperty("format").GetString() != "osprey-golden-ops" || root.GetProperty("version").GetInt32() != 1)
                throw new InvalidDataException($"{family}.json: not an osprey-golden-ops v1 file");
            f = [];
            foreach (var c in root.GetProperty("cases").EnumerateArray()) f.Add(c.GetProperty("name").GetString()!, c);
            s_files[family] = f;
            return f;
        }
    }

    public static TheoryData<string> Names(string family, Func<string, bool>? where = null)
    {
        var data = new TheoryData<string>();
        foreach (var name in File(family).Keys)
            if (where is null || where(name)) data.Add(name);
        return data;
    }

    public static IReadOnlyCollection<string> CaseNames(string family) => File(family).Keys;

    public static Case Get(string family, string name) => new(File(family)[name]);

    public sealed class Case(JsonElement e)
    {
        public JsonElement Args => e.GetProperty("args");
        public string Str(string key) => Args.GetProperty(key).GetString()!;
        public int Int(string key) => Args.GetProperty(key).GetInt32();
        public float Float(string key) => Args.GetProperty(key).GetSingle();
        public bool Bool(string key) => Args.TryGetProperty(key, out var v) && v.GetBoolean();
        public int[] Ints(string key) => Args.GetProperty(key).EnumerateArray().Select(v => v.GetInt32()).ToArray();

        public int Inputs => e.GetProperty("inputs").GetArrayLength();
        public Tensor Input(int i) => MakeInput(e.GetProperty("inputs")[i]);
        public Tensor Output(int i) => FromRaw(e.GetProperty("outputs")[i]);
    }

    public static DType ParseDType(string s) => s switch
    {
        "float32" => DType.Float32,
        "float16" => DType.Float16,
        "bfloat16" => DType.BFloat16,
        "int8" => DType.Int8,
        "uint8" => DType.UInt8,
        "int32" => DType.Int32,
        "int64" => DType.Int64,
        "bool" => DType.Bool,
        _ => throw new InvalidDataException($"unknown dtype {s}"),
    };

    private static Shape ShapeOf(JsonElement t) => new(t.GetProperty("shape").EnumerateArray().Select(v => v.GetInt32()).ToArray());

    private static Tensor FromRaw(JsonElement t)
    {
        var shape = ShapeOf(t);
        var dtype = ParseDType(t.GetProperty("dtype").GetString()!);
        byte[] bytes = Convert.FromBase64String(t.GetProperty("data").GetString()!);
        if (bytes.Length != shape.Numel * dtype.SizeOf())
            throw new InvalidDataException($"fixture tensor {shape} {dtype.Name()} has {bytes.Length} bytes");
        var x = Tensor.Empty(shape, dtype);
        x.Backend.Upload(bytes, x.Storage, 0);
        return x;
    }

    private static Tensor MakeInput(JsonElement t)
    {
        if (t.TryGetProperty("data", out _)) return FromRaw(t);
        var shape = ShapeOf(t);
        var dtype = ParseDType(t.GetProperty("dtype").GetString()!);
        var g = t.GetProperty("gen");
        var values = Generator.Values(g, shape.Numel);
        bool ints = g.TryGetProperty("int", out var iv) && iv.GetBoolean();
        Tensor raw = ints || dtype == DType.Bool
            ? Tensor.FromSpan<long>(Array.ConvertAll(values, v => (long)v), shape)
            : Tensor.FromSpan<float>(Array.ConvertAll(values, v => (float)v), shape);
        if (raw.DType == dtype) return raw;
        using (raw) return Op.Cast(raw, dtype);
    }

    /// <summary>xorshift64* with a scrambled seed; identical to Gen in tools/golden_ops.py.</summary>
    public static class Generator
    {
        public static double[] Values(JsonElement spec, long count)
        {
            ulong s = unchecked((ulong)spec.GetProperty("seed").GetInt64() * 0x9E3779B97F4A7C15UL + 1);
            if (s == 0) s = 1;
            double lo = spec.GetProperty("lo").GetDouble(), hi = spec.GetProperty("hi").GetDouble();
            int levels = spec.TryGetProperty("levels", out var l) ? l.GetInt32() : 0;
            bool ints = spec.TryGetProperty("int", out var i) && i.GetBoolean();
            bool nonzero = spec.TryGetProperty("nonzero", out var nz) && nz.GetBoolean();
            var v = new double[count];
            for (long k = 0; k < count; k++)
            {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                ulong r = unchecked(s * 0x2545F4914F6CDD1DUL);
                double x = ints ? (long)lo + (long)((r >> 33) % (ulong)((long)hi - (long)lo))
                    : levels > 0 ? lo + (hi - lo) * (double)((r >> 40) % (ulong)levels) / levels
                    : lo + (hi - lo) * ((r >> 40) / 16777216.0);
                if (nonzero && x == 0) x = 1;
                v[k] = x;
            }
            return v;
        }
    }

    /// <summary>Exact for integer and bool tensors; within atol + rtol*|expected| (NaN where NaN) for floating ones.</summary>
    public static void AssertMatches(Tensor expected, Tensor actual, double atol, double rtol, string what)
    {
        if (expected.Shape != actual.Shape) throw new Xunit.Sdk.XunitException($"{what}: shape {actual.Shape}, expected {expected.Shape}");
        if (expected.DType != actual.DType) throw new Xunit.Sdk.XunitException($"{what}: dtype {actual.DType.Name()}, expected {expected.DType.Name()}");
        if (expected.DType.IsFloating())
        {
            Close.Assert(expected, actual, atol, rtol, what);
            return;
        }
        using var e = Op.Cast(expected, DType.Int64);
        using var a = Op.Cast(actual, DType.Int64);
        long[] ev = e.ToArray<long>(), av = a.ToArray<long>();
        for (int k = 0; k < ev.Length; k++)
            if (ev[k] != av[k]) throw new Xunit.Sdk.XunitException($"{what}: first difference at flat index {k}: got {av[k]}, expected {ev[k]}");
    }

    /// <summary>Tolerances for results computed in float32 and rounded once to the dtype.</summary>
    public static (double Atol, double Rtol) Tolerance(DType dtype, double atol32 = 1e-5, double rtol32 = 1e-5) => dtype switch
    {
        DType.Float16 => (1e-3, 1e-3),
        DType.BFloat16 => (8e-3, 8e-3),
        _ => (atol32, rtol32),
    };
}
