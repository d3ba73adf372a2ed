using System.Text.Json;
using Osprey.Detection.Training;
using Osprey.Tests.Support;

namespace Osprey.Tests.Training;

/// <summary>Reads Fixtures/train/*.json written by tools/golden_train.py (arrays are base64 float32 / int64).</summary>
internal static class TrainFixtures
{
    private static readonly Lazy<JsonElement> s_losses = new(() => Load("losses"));
    private static readonly Lazy<JsonElement> s_optim = new(() => Load("optim"));

    public static JsonElement Losses => s_losses.Value;
    public static JsonElement Optim => s_optim.Value;

    private static JsonElement Load(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Support.RepoPaths.Fixture("train", name + ".json")));
        var root = doc.RootElement.Clone();
        if (root.GetProperty("format").GetString() != "osprey-golden-train" || root.GetProperty("version").GetInt32() != 1)
            throw new InvalidDataException($"{name}.json: not an osprey-golden-train v1 file");
        return root;
    }

    public static JsonElement Case(JsonElement root, string name)
    {
        foreach (var c in root.GetProperty("cases").EnumerateArray())
            if (c.GetProperty("name").GetString() == name) return c;
        throw new KeyNotFoundException($"fixture case {name}");
    }

    public static float[] Floats(JsonElement t)
    {
        if (t.GetProperty("dtype").GetString() != "float32") throw new InvalidDataException("expected float32");
        var b = Convert.FromBase64String(t.GetProperty("data").GetString()!);
        var f = new float[b.Length / 4];
        Buffer.BlockCopy(b, 0, f, 0, b.Length);
        return f;
    }

    public static int[] Ints(JsonElement t)
    {
        if (t.GetProperty("dtype").GetString() != "int64") throw new InvalidDataException("expected int64");
        var b = Convert.FromBase64String(t.GetProperty("data").GetString()!);
        var l = new long[b.Length / 8];
        Buffer.BlockCopy(b, 0, l, 0, b.Length);
        return Array.ConvertAll(l, v => checked((int)v));
    }

    public static int[] Shape(JsonElement t) => t.GetProperty("shape").EnumerateArray().Select(v => v.GetInt32()).ToArray();

    /// <summary>
    /// The "retina_l1" loss case as head outputs: anchors, formula logits [n, a, k] and regression [n, a, 4] (the
    /// values tools/golden_train.py uses), and the case's targets.
    /// </summary>
    public static (float[] Anchors, float[] Cls, float[] Reg, DetectionTarget[] Targets, int N, int A, int K) RetinaHeads()
    {
        var c = Case(Losses, "retina_l1");
        var anchors = Floats(c.GetProperty("anchors"));
        int n = 2, a = anchors.Length / 4, k = 5;
        var cls = Formula.Values("retina_l1.cls", (long)n * a * k).Select(v => v * 4f).ToArray();
        var reg = Formula.Values("retina_l1.reg", (long)n * a * 4).Select(v => v * 0.5f).ToArray();
        var boxes = c.GetProperty("boxes").EnumerateArray().ToArray();
        var labels = c.GetProperty("labels").EnumerateArray().ToArray();
        var targets = Enumerable.Range(0, n).Select(i => new DetectionTarget(Floats(boxes[i]), labels[i].EnumerateArray().Select(v => v.GetInt32()).ToArray())).ToArray();
        return (anchors, cls, reg, targets, n, a, k);
    }
}
