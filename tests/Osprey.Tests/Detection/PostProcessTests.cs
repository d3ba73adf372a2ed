using System.Text.Json;
using Osprey.Detection.Boxes;
using Det = Osprey.Detection.Boxes.DetectedObject;
using Osprey.Tests.Support;

namespace Osprey.Tests.Detection;

/// <summary>RetinaNet and SSD300 postprocess_detections (+ transform.postprocess) against torchvision 0.14.</summary>
public class PostProcessTests
{
    private static void AssertDetections(JsonElement want, IReadOnlyList<Det> got, string what)
    {
        var scores = want.GetProperty("scores").Floats();
        var labels = want.GetProperty("labels").Ints();
        var boxes = want.GetProperty("boxes").Floats();
        Assert.True(scores.Length == got.Count, $"{what}: {got.Count} detections, torchvision has {scores.Length}");
        Assert.Equal(labels, got.Select(d => d.Label).ToArray());
        // sigmoid/softmax/exp differ from torch's vectorised versions by an ulp or so
        Close.Assert(scores, got.Select(d => d.Score).ToArray(), 1e-6, 1e-5, what + " scores");
        Close.Assert(boxes, got.SelectMany(d => new[] { d.X1, d.Y1, d.X2, d.Y2 }).ToArray(), 1e-3, 1e-5, what + " boxes");
    }

    private static ImageSize Size(JsonElement e) => new(e[0].GetInt32(), e[1].GetInt32());

    [Fact]
    public void RetinaNet_postprocess_matches_torchvision()
    {
        foreach (var c in GoldenBoxes.Root.GetProperty("retina_postprocess").EnumerateArray())
        {
            string name = c.GetProperty("name").GetString()!;
            var grids = c.GetProperty("grids").EnumerateArray().Select(Size).ToArray();
            int classes = c.GetProperty("classes").GetInt32();
            float scale = (float)c.GetProperty("scale").GetDouble(), shift = (float)c.GetProperty("shift").GetDouble();
            var anchors = AnchorGenerator.RetinaNet().Generate(Size(c.GetProperty("image")), grids);
            var counts = grids.Select(g => g.Height * g.Width * 9).ToArray();
            var logits = new List<float>();
            var regs = new List<float>();
            for (int l = 0; l < counts.Length; l++)
            {
                logits.AddRange(Formula.Values($"{name}.cls.{l}", (long)counts[l] * classes).Select(v => v * scale + shift));
                regs.AddRange(Formula.Values($"{name}.reg.{l}", counts[l] * 4).Select(v => v * 0.5f));
            }
            var options = new PostProcessOptions((float)c.GetProperty("score_thresh").GetDouble(), c.GetProperty("topk").GetInt32(),
                c.GetProperty("nms").GetDouble(), c.GetProperty("detections").GetInt32());
            var post = new RetinaNetPostProcessor(options);
            var imageSize = Size(c.GetProperty("image_size"));
            var got = new List<Det>();
            for (int rep = 0; rep < 2; rep++)  // the second run reuses the buffers
            {
                got.Clear();
                post.Run(logits.ToArray(), regs.ToArray(), anchors, counts, classes, imageSize, got);
                AssertDetections(c.GetProperty("result"), got, name);
            }
            if (c.TryGetProperty("original", out var orig))
            {
                var rescaled = got.Select(d => BoxOps.Rescale(d, imageSize, Size(orig))).SelectMany(d => new[] { d.X1, d.Y1, d.X2, d.Y2 }).ToArray();
                Close.Assert(c.GetProperty("rescaled").Floats(), rescaled, 1e-2, 1e-5, name + " rescaled");
            }
        }
    }

    [Fact]
    public void Ssd_postprocess_matches_torchvision()
    {
        var anchors = DefaultBoxGenerator.Ssd300().Generate(new ImageSize(300, 300),
            [new(38, 38), new(19, 19), new(10, 10), new(5, 5), new(3, 3), new(1, 1)]);
        int n = anchors.Length / 4;
        foreach (var c in GoldenBoxes.Root.GetProperty("ssd_postprocess").EnumerateArray())
        {
            string name = c.GetProperty("name").GetString()!;
            float scale = (float)c.GetProperty("scale").GetDouble();
            var logits = Formula.Values($"{name}.cls", n * 91L).Select(v => v * scale).ToArray();
            var regs = Formula.Values($"{name}.reg", n * 4).Select(v => v * 2f).ToArray();
            var options = new PostProcessOptions((float)c.GetProperty("score_thresh").GetDouble(), c.GetProperty("topk").GetInt32(),
                c.GetProperty("nms").GetDouble(), c.GetProperty("detections").GetInt32());
            var got = new List<Det>();
            new SsdPostProcessor(options).Run(logits, regs, anchors, 91, new ImageSize(300, 300), got);
            AssertDetections(c.GetProperty("result"), got, name);
            if (c.TryGetProperty("original", out var orig))
            {
                var rescaled = got.Select(d => BoxOps.Rescale(d, new ImageSize(300, 300), Size(orig))).SelectMany(d => new[] { d.X1, d.Y1, d.X2, d.Y2 }).ToArray();
                Close.Assert(c.GetProperty("rescaled").Floats(), rescaled, 1e-2, 1e-5, name + " rescaled");
            }
        }
    }

    [Fact]
    public void Top_k_selection_keeps_the_k_best_keys()
    {
        var rng = new Random(5);
        for (int n = 1; n < 300; n += 7)
            for (int k = 1; k <= n; k += 5)
            {
                var keys = Enumerable.Range(0, n).Select(i => Nms.DescendingKey(rng.Next(4) / 4f, i)).ToArray();
                var want = keys.Order().Take(k).ToArray();
                var work = (ulong[])keys.Clone();
                RetinaNetPostProcessor.SelectTop(work, k);
                Assert.Equal(want, work.Take(k).Order().ToArray());
            }
    }

    [Fact]
    public void Options_are_validated()
    {
        Assert.Throws<ArgumentException>(() => new RetinaNetPostProcessor(PostProcessOptions.RetinaNetTorchvision with { NmsThreshold = 1.5 }));
        Assert.Throws<ArgumentException>(() => new SsdPostProcessor(PostProcessOptions.Ssd300Torchvision with { DetectionsPerImage = 0 }));
    }
}
