using Osprey.Detection.Boxes;
using Osprey.Detection.Training.Matching;
using Osprey.Tests.Support;

namespace Osprey.Tests.Training;

public class MatcherTests
{
    public static TheoryData<string> Cases() => ["three", "one", "far"];

    private static System.Text.Json.JsonElement Get(string name)
    {
        foreach (var c in TrainFixtures.Losses.GetProperty("matcher").GetProperty("cases").EnumerateArray())
            if (c.GetProperty("name").GetString() == name) return c;
        throw new KeyNotFoundException(name);
    }

    [Theory, MemberData(nameof(Cases))]
    public void BoxIou_is_bit_exact_with_torchvision(string name)
    {
        var c = Get(name);
        var anchors = TrainFixtures.Floats(TrainFixtures.Losses.GetProperty("matcher").GetProperty("anchors"));
        var iou = BoxIou.Matrix(TrainFixtures.Floats(c.GetProperty("boxes")), anchors);
        Close.Assert(TrainFixtures.Floats(c.GetProperty("iou")), iou, 0, 0, $"box_iou {name}");
    }

    [Theory, MemberData(nameof(Cases))]
    public void Matchers_agree_with_torchvision(string name)
    {
        var c = Get(name);
        var anchors = TrainFixtures.Floats(TrainFixtures.Losses.GetProperty("matcher").GetProperty("anchors"));
        var boxes = TrainFixtures.Floats(c.GetProperty("boxes"));
        foreach (var (key, options) in new[] { ("retinanet", MatcherOptions.RetinaNet), ("odtk", MatcherOptions.Odtk), ("ssd", MatcherOptions.Ssd) })
            Assert.Equal(TrainFixtures.Ints(c.GetProperty(key)), Matcher.MatchBoxes(boxes, anchors, options));
    }

    [Fact]
    public void Thresholds_split_background_ignore_and_foreground()
    {
        float[] iou = [0.39f, 0.4f, 0.49f, 0.5f, 0.9f];
        Assert.Equal(new[] { -1, -2, -2, 0, 0 }, Matcher.Match(iou, 1, 5, MatcherOptions.Odtk));
        Assert.Equal(new[] { -1, -1, -2, 0, 0 }, Matcher.Match(iou, 1, 5, new MatcherOptions(0.5f, 0.45f)));
        // low-quality: a ground truth whose best IoU is 0.3 still gets its anchor
        Assert.Equal(new[] { 0, -1 }, Matcher.Match([0.3f, 0.1f], 1, 2, MatcherOptions.RetinaNet));
        Assert.Equal(new[] { -1, -1 }, Matcher.Match([0.3f, 0.1f], 1, 2, MatcherOptions.Odtk));
        Assert.Equal(new[] { -1, -1, -1 }, Matcher.MatchBoxes([], new float[12], MatcherOptions.RetinaNet));
    }

    [Fact]
    public void Bad_sizes_and_thresholds_are_refused()
    {
        Assert.Throws<ArgumentException>(() => Matcher.Match(new float[5], 2, 3, MatcherOptions.RetinaNet));
        Assert.Throws<ArgumentException>(() => Matcher.Match(new float[2], 1, 2, new MatcherOptions(0.4f, 0.5f)));
        Assert.Throws<ArgumentException>(() => BoxIou.Matrix(new float[5], new float[4]));
    }

    [Fact]
    public void Encode_matches_torchvision_and_inverts_decode()
    {
        var e = TrainFixtures.Losses.GetProperty("elements").GetProperty("encode");
        var boxes = TrainFixtures.Floats(e.GetProperty("boxes"));
        var refs = TrainFixtures.Floats(e.GetProperty("refs"));
        foreach (var (key, coder) in new[] { ("retinanet", BoxCoder.RetinaNet), ("ssd", BoxCoder.Ssd) })
        {
            var codes = new float[boxes.Length];
            coder.Encode(boxes, refs, codes);
            Close.Assert(TrainFixtures.Floats(e.GetProperty(key)), codes, 1e-6, 1e-5, $"encode {key}");
            var back = new float[boxes.Length];
            coder.Decode(codes, refs, back);
            Close.Assert(boxes, back, 1e-4, 1e-5, $"decode(encode) {key}");
        }
    }
}
