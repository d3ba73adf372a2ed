using System.Text.Json;
using Osprey.Detection.Boxes;
using Osprey.Tests.Support;

namespace Osprey.Tests.Detection;

/// <summary>
/// ODTK and NVIDIA SSD300 anchors, default boxes and post-processing against tools/ref_nvidia.py
/// (Fixtures/detect/nvidia_boxes.json, tools/golden_nvidia_boxes.py) on formula head outputs, ties and empty results
/// included. Anchors exact; scores 1e-6 + 1e-5 relative; boxes 1e-3 + 1e-5 relative; counts, labels and order exact.
/// </summary>
public class NvidiaPostProcessTests
{
    private static readonly Lazy<JsonDocument> s_doc = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "detect", "nvidia_boxes.json"))));

    private static JsonElement Root => s_doc.Value.RootElement;

    [Fact]
    public void Odtk_cell_anchors_are_exact()
    {
        var anchors = OdtkAnchors.Default();
        foreach (var stride in new[] { 8, 16, 32, 64, 128 })
            Assert.Equal(Root.GetProperty("odtk_cell_anchors").GetProperty(stride.ToString()).Floats(), anchors.Cell(stride));
        // a level's anchors are the cell shifted by (x, y) * stride, locations row-major, anchors together
        var all = anchors.Generate(new ImageSize(64, 128), [new ImageSize(8, 16)]);
        var cell = anchors.Cell(8);
        Assert.Equal(8 * 16 * 9 * 4, all.Length);
        int at = ((3 * 16 + 5) * 9 + 4) * 4;
        Assert.Equal([5 * 8 + cell[16], 3 * 8 + cell[17], 5 * 8 + cell[18], 3 * 8 + cell[19]], all[at..(at + 4)]);
    }

    [Fact]
    public void Nvidia_default_boxes_match_dboxes300_coco()
    {
        var boxes = NvidiaDefaultBoxes.Generate();
        Assert.Equal(8732 * 4, boxes.Length);
        GoldenBoxes.AssertSummary(Root.GetProperty("dle_dboxes"), boxes, 0, "dboxes300_coco");
        Assert.Throws<ArgumentException>(() => NvidiaDefaultBoxes.CheckGrids([new ImageSize(38, 38)]));
        NvidiaDefaultBoxes.CheckGrids([new(38, 38), new(19, 19), new(10, 10), new(5, 5), new(3, 3), new(1, 1)]);
    }

    public static TheoryData<int> OdtkCases => [0, 1, 2];

    [Theory]
    [MemberData(nameof(OdtkCases))]
    public void Odtk_postprocess_matches_the_reference(int index)
    {
        var c = Root.GetProperty("odtk")[index];
        int[] grids = [32, 16, 8, 4, 2];
        const int K = 3, A = 9;
        int total = grids.Sum(g => g * g * A);
        string key = c.GetProperty("key").GetString()!;
        var logits = Logits(key + "/logits", total * K, c.GetProperty("quantised").GetBoolean());
        var regs = Formula.Values(key + "/regression", total * 4).Select(v => v * 0.5f).ToArray();
        var sizes = grids.Select(g => new ImageSize(g, g)).ToArray();
        var input = new ImageSize(256, 256);
        var anchors = OdtkAnchors.Default().Generate(input, sizes);
        var options = Options(c);
        var post = new OdtkPostProcessor(options);
        var found = new List<DetectedObject>();
        post.Run(logits, regs, anchors, sizes, A, K, input, found);
        Compare(c, found, key);
        // the buffers are reused: a second run gives the same result
        var again = new List<DetectedObject>();
        post.Run(logits, regs, anchors, sizes, A, K, input, again);
        Assert.Equal(found, again);
        Assert.Throws<ArgumentException>(() => post.Run(logits.AsSpan(1), regs, anchors, sizes, A, K, input, found));
    }

    public static TheoryData<int> DleCases => [0, 1, 2];

    [Theory]
    [MemberData(nameof(DleCases))]
    public void Nvidia_ssd_postprocess_matches_the_reference(int index)
    {
        var c = Root.GetProperty("dle")[index];
        string key = c.GetProperty("key").GetString()!;
        int k = c.GetProperty("classes").GetInt32();
        var logits = Logits(key + "/logits", 8732 * k, c.GetProperty("quantised").GetBoolean());
        var regs = Formula.Values(key + "/regression", 8732 * 4);
        var post = new NvidiaSsdPostProcessor(Options(c));
        var found = new List<DetectedObject>();
        post.Run(logits, regs, NvidiaDefaultBoxes.Generate(), k, found);
        Compare(c, found, key);
        Assert.Throws<ArgumentException>(() => post.Run(logits, regs.AsSpan(4), NvidiaDefaultBoxes.Generate(), k, found));
    }

    /// <summary>More kept boxes over all classes than default boxes (each class keeps every disjoint box): no overrun.</summary>
    [Fact]
    public void Nvidia_ssd_postprocess_keeps_more_detections_than_boxes()
    {
        const int boxes = 10, classes = 5;
        var dboxes = new float[boxes * 4];
        for (int i = 0; i < boxes; i++) { dboxes[4 * i] = 0.05f + 0.1f * i; dboxes[4 * i + 1] = 0.5f; dboxes[4 * i + 2] = 0.05f; dboxes[4 * i + 3] = 0.05f; }
        var logits = new float[boxes * classes];
        for (int i = 0; i < logits.Length; i++) logits[i] = i % classes == 0 ? -5f : 0.01f * (i % 7);
        var found = new List<DetectedObject>();
        new NvidiaSsdPostProcessor(PostProcessOptions.NvidiaSsd300).Run(logits, new float[boxes * 4], dboxes, classes, found);
        Assert.Equal(boxes * (classes - 1), found.Count);
        for (int i = 1; i < found.Count; i++) Assert.True(found[i - 1].Score >= found[i].Score);
    }

    [Fact]
    public void Box_codings_follow_their_references()
    {
        // ODTK: w = x2 - x1 + 1 = 10, ctr = 5, pcx = 0.1 * 10 + 5, w' = 10, h' = 2 * 10; x2 = ctr + w'/2 - 1 (inclusive)
        var box = new float[4];
        BoxCoder.Odtk.DecodeOne([0.1f, 0f, 0f, MathF.Log(2)], [0f, 0f, 9f, 9f], box);
        Close.Assert([1f, -5f, 10f, 14f], box, 1e-5, 0, "odtk decode");
        // DLE: (cx, cy, w, h) references, codes times 0.1 / 0.2
        BoxCoder.NvidiaSsd.DecodeOne([1f, -1f, 0f, 5f * MathF.Log(2)], [0.5f, 0.5f, 0.2f, 0.1f], box);
        Close.Assert([0.42f, 0.39f, 0.62f, 0.59f], box, 1e-6, 0, "nvidia ssd decode");
        // the torchvision coding is the default and unchanged
        Assert.Equal(BoxCoding.Torchvision, BoxCoder.RetinaNet.Coding);
        Assert.Equal(new BoxCoder(10, 10, 5, 5, BoxCoder.DefaultClip), BoxCoder.Ssd);
    }

    private static PostProcessOptions Options(JsonElement c) => new(
        (float)c.GetProperty("threshold").GetDouble(), c.GetProperty("top_n").GetInt32(), c.GetProperty("nms").GetDouble(), c.GetProperty("detections").GetInt32());

    private static float[] Logits(string key, int n, bool quantised)
    {
        var u = Formula.Values(key, n);
        for (int i = 0; i < n; i++)
        {
            float v = u[i] * 4f;
            u[i] = quantised ? MathF.Round(v * 4f, MidpointRounding.ToEven) / 4f : v;
        }
        return u;
    }

    private static void Compare(JsonElement c, List<DetectedObject> found, string what)
    {
        var scores = c.GetProperty("scores").Floats();
        Assert.Equal(scores.Length, found.Count);
        Close.Assert(scores, found.Select(d => d.Score).ToArray(), 1e-6, 1e-5, what + " scores");
        Assert.Equal(c.GetProperty("labels").Ints(), found.Select(d => d.Label).ToArray());
        Close.Assert(c.GetProperty("boxes").Floats(), found.SelectMany(d => new[] { d.X1, d.Y1, d.X2, d.Y2 }).ToArray(), 1e-3, 1e-5, what + " boxes");
    }
}
