using Osprey.Detection.Boxes;
using Osprey.Tests.Support;

namespace Osprey.Tests.Detection;

/// <summary>Anchors, default boxes and box decoding against torchvision 0.14 (Fixtures/detect/boxes.json).</summary>
public class AnchorAndDecodeTests
{
    private static ImageSize[] Grids(System.Text.Json.JsonElement e) =>
        e.EnumerateArray().Select(g => new ImageSize(g[0].GetInt32(), g[1].GetInt32())).ToArray();

    [Fact]
    public void RetinaNet_cell_anchors_round_exactly_as_torchvision()
    {
        var gen = AnchorGenerator.RetinaNet();
        var want = GoldenBoxes.Root.GetProperty("retina_cell_anchors").EnumerateArray().ToArray();
        Assert.Equal(want.Length, gen.Levels);
        for (int l = 0; l < gen.Levels; l++)
            Assert.Equal(want[l].Floats(), gen.CellAnchors(l).ToArray());
    }

    [Theory]
    [InlineData("retina_anchors_64x64")]
    [InlineData("retina_anchors_96x128")]
    public void RetinaNet_grid_anchors_match_torchvision(string name)
    {
        var c = GoldenBoxes.Root.GetProperty(name);
        var img = c.GetProperty("image");
        var anchors = AnchorGenerator.RetinaNet().Generate(new ImageSize(img[0].GetInt32(), img[1].GetInt32()), Grids(c.GetProperty("grids")));
        GoldenBoxes.AssertSummary(c.GetProperty("anchors"), anchors, 0, name);
    }

    [Fact]
    public void Ssd300_default_boxes_match_torchvision()
    {
        var c = GoldenBoxes.Root.GetProperty("ssd_default_boxes");
        var boxes = DefaultBoxGenerator.Ssd300().Generate(new ImageSize(300, 300), Grids(c.GetProperty("grids")));
        Assert.Equal(8732 * 4, boxes.Length);
        GoldenBoxes.AssertSummary(c.GetProperty("boxes"), boxes, 2e-5, "ssd default boxes");
    }

    [Theory]
    [InlineData("retina")]
    [InlineData("ssd")]
    public void Decode_matches_torchvision_BoxCoder_including_the_exp_clip(string which)
    {
        var c = GoldenBoxes.Root.GetProperty("decode").GetProperty(which);
        var w = c.GetProperty("weights").Floats();
        var anchors = GoldenBoxes.BoxesFrom("decode.anchors", 200);
        var codes = Formula.Values("decode.codes", 800);
        for (int i = 0; i < codes.Length; i++) codes[i] *= 3f;
        for (int r = 0; r < 200; r += 17) { codes[r * 4 + 2] *= 4f; codes[r * 4 + 3] *= 4f; }
        var boxes = new float[800];
        new BoxCoder(w[0], w[1], w[2], w[3], BoxCoder.DefaultClip).Decode(codes, anchors, boxes);
        // torch's vectorised exp is within an ulp or two of MathF.Exp
        Close.Assert(c.GetProperty("boxes").Floats(), boxes, 1e-4, 1e-6, $"decode {which}");
    }

    [Fact]
    public void Bad_lengths_are_reported()
    {
        var gen = AnchorGenerator.RetinaNet();
        var e = Assert.Throws<ArgumentException>(() => gen.Generate(new ImageSize(64, 64), [new(8, 8)]));
        Assert.Contains("1 feature levels", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => BoxCoder.RetinaNet.Decode(new float[8], new float[4], new float[8]));
    }
}
