using System.Text.Json;
using Osprey.Tests.Support;

namespace Osprey.Tests.Detection;

/// <summary>Reads tests/Osprey.Tests/Fixtures/detect/boxes.json (tools/golden_detect.py) and rebuilds its formula inputs.</summary>
internal static class GoldenBoxes
{
    private static readonly Lazy<JsonDocument> s_doc = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "detect", "boxes.json"))));

    public static JsonElement Root => s_doc.Value.RootElement;

    public static float[] Floats(this JsonElement e) => e.EnumerateArray().Select(v => (float)v.GetDouble()).ToArray();
    public static int[] Ints(this JsonElement e) => e.EnumerateArray().Select(v => v.GetInt32()).ToArray();

    /// <summary>tools/golden_detect.py boxes_from: x1, y1 in [0, span), sides in [lo, hi).</summary>
    public static float[] BoxesFrom(string key, int n, float span = 100f, float lo = 5f, float hi = 40f)
    {
        var u = Formula.Values(key, n * 4);
        var b = new float[n * 4];
        float half = (float)(span / 2.0), side = (float)((hi - lo) / 2.0);
        for (int i = 0; i < n; i++)
        {
            float x1 = (u[i * 4] + 1) * half, y1 = (u[i * 4 + 1] + 1) * half;
            float w = lo + (u[i * 4 + 2] + 1) * side, h = lo + (u[i * 4 + 3] + 1) * side;
            b[i * 4] = x1; b[i * 4 + 1] = y1; b[i * 4 + 2] = x1 + w; b[i * 4 + 3] = y1 + h;
        }
        return b;
    }

    /// <summary>Scores in [0, 1]; with levels &gt; 0 rounded to multiples of 1/(2 levels), so many tie.</summary>
    public static float[] Scores(string key, int n, int levels)
    {
        var s = Formula.Values(key, n);
        for (int i = 0; i < n; i++)
            s[i] = levels > 0 ? MathF.Round((s[i] + 1) * levels, MidpointRounding.ToEven) / (2 * levels) : (s[i] + 1) / 2;
        return s;
    }

    /// <summary>Checks a summary {shape, sum, every, sample} against a full array.</summary>
    public static void AssertSummary(JsonElement summary, ReadOnlySpan<float> actual, double atol, string what)
    {
        int every = summary.GetProperty("every").GetInt32();
        var sample = summary.GetProperty("sample").Floats();
        long numel = summary.GetProperty("shape").EnumerateArray().Aggregate(1L, (a, d) => a * d.GetInt32());
        Assert.Equal(numel, actual.Length);
        var picked = new float[sample.Length];
        for (int i = 0; i < picked.Length; i++) picked[i] = actual[i * every];
        Close.Assert(sample, picked, atol, 0, what + " samples");
        double sum = 0;
        foreach (float v in actual) sum += v;
        double want = summary.GetProperty("sum").GetDouble();
        Assert.True(Math.Abs(sum - want) <= atol * actual.Length + 1e-9 * Math.Abs(want), $"{what}: sum {sum}, expected {want}");
    }
}
