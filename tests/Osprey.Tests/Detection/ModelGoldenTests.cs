using System.Text.Json;
using Osprey.Core.Tensors;
using Osprey.Detection;
using Osprey.Detection.Models;
using Osprey.Tests.Support;
using Osprey.Tests.Vision;
using Osprey.Vision.Codecs;
using Osprey.Vision.Transforms;

namespace Osprey.Tests.Detection;

/// <summary>
/// Whole models on the CPU in float32 against torchvision 0.14 (tools/golden_models.py) and against the ODTK and NVIDIA
/// SSD300 reference definitions (tools/ref_nvidia.py): formula weights, coco128 images at a reduced input size;
/// transformed input, every feature level, both head outputs and the final detections (original image pixels, COCO
/// category ids) are compared.
/// </summary>
public class ModelGoldenTests
{
    public static TheoryData<string, MemoryFormat> Archs => new()
    {
        { "retinanet_resnet18_fpn", MemoryFormat.ChannelsLast },
        { "retinanet_resnet18_fpn", MemoryFormat.Contiguous },
        { "retinanet_resnet34_fpn", MemoryFormat.ChannelsLast },
        { "retinanet_resnet50_fpn", MemoryFormat.ChannelsLast },
        { "retinanet_resnet101_fpn", MemoryFormat.ChannelsLast },
        { "retinanet_resnet152_fpn", MemoryFormat.ChannelsLast },
        { "ssd300_vgg16", MemoryFormat.ChannelsLast },
        { "retinanet_mobilenetv2_fpn", MemoryFormat.ChannelsLast },
        { "retinanet_mobilenetv2_fpn", MemoryFormat.Contiguous },
        { "ssd300_resnet50", MemoryFormat.ChannelsLast },
    };

    [Theory]
    [MemberData(nameof(Archs))]
    public void Model_matches_torchvision(string arch, MemoryFormat format)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "detect", "models", arch + ".json")));
        var f = doc.RootElement;
        var a = Architectures.Get(arch);
        var model = a.Create();
        Assert.Equal(f.GetProperty("parameters").GetInt32(), model.Parameters.Expected.Count);
        model.Dispose();
        using var weights = FormulaWeights.StateDict(model.Parameters.Expected);
        var resize = a.Resize.Kind == ResizeKind.Fixed ? a.Resize
            : a.Resize with { MinSize = f.GetProperty("min_size").GetInt32(), MaxSize = f.GetProperty("max_size").GetInt32() };
        using var detector = Detector.Create(arch, weights, "formula", new DetectorOptions { Resize = resize, Format = format });
        var images = f.GetProperty("images").EnumerateArray().Select(n => ImageDecoder.Decode(Path.Combine(ImageDecoderTests.CocoDir, n.GetString()!))).ToArray();
        var (batch, heads) = detector.RunNetwork(images, keepFeatures: true);
        using (batch)
        using (heads)
        {
            Assert.Equal(f.GetProperty("image_sizes").EnumerateArray().Select(s => (s[0].GetInt32(), s[1].GetInt32())), batch.Resized);
            AssertStats(f.GetProperty("input"), batch.Images, 1e-4, "input");
            var feats = f.GetProperty("features").EnumerateArray().ToArray();
            Assert.Equal(feats.Length, heads.Features.Length);
            for (int i = 0; i < feats.Length; i++) AssertStats(feats[i], heads.Features[i], 2e-3, $"feature {i}");
            AssertStats(f.GetProperty("cls_logits"), heads.ClassLogits, 2e-3, "cls_logits");
            AssertStats(f.GetProperty("bbox_regression"), heads.BoxRegression, 2e-3, "bbox_regression");
            var dets = detector.PostProcessBatch(heads, batch);
            var want = f.GetProperty("detections").EnumerateArray().ToArray();
            for (int i = 0; i < want.Length; i++)
            {
                Assert.Equal(want[i].GetProperty("count").GetInt32(), dets[i].Count);
                var scores = want[i].GetProperty("scores").Floats();
                Close.Assert(scores, dets[i].Take(scores.Length).Select(d => d.Score).ToArray(), 1e-4, 1e-3, $"{arch} image {i} scores");
                Assert.Equal(want[i].GetProperty("labels").Ints(), dets[i].Take(scores.Length).Select(d => d.Label).ToArray());
                var boxes = want[i].GetProperty("boxes").Floats();
                Close.Assert(boxes, dets[i].Take(boxes.Length / 4).SelectMany(d => new[] { d.X1, d.Y1, d.X2, d.Y2 }).ToArray(), 0.05, 1e-3, $"{arch} image {i} boxes");
            }
        }
    }

    /// <summary>Sum and abs-sum within rtol of the abs-sum; sampled values within rtol of the mean magnitude.</summary>
    internal static void AssertStats(JsonElement want, Tensor t, double rtol, string what)
    {
        Assert.Equal(want.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray(), t.Shape.ToArray());
        float[] v;
        if (t.DType == DType.Float32) v = t.ToArray<float>();
        else using (var f = Osprey.Core.Ops.Op.Cast(t, DType.Float32)) v = f.ToArray<float>();
        double sum = 0, abs = 0;
        foreach (float x in v) { sum += x; abs += Math.Abs(x); }
        double wantAbs = want.GetProperty("abs_sum").GetDouble();
        Assert.True(Math.Abs(abs - wantAbs) <= rtol * wantAbs, $"{what}: abs sum {abs}, torchvision {wantAbs}");
        Assert.True(Math.Abs(sum - want.GetProperty("sum").GetDouble()) <= rtol * wantAbs, $"{what}: sum {sum}, torchvision {want.GetProperty("sum").GetDouble()}");
        var idx = want.GetProperty("sample_index").Ints();
        var sample = want.GetProperty("sample").Floats();
        double scale = wantAbs / Math.Max(1, v.Length);
        Close.Assert(sample, idx.Select(i => v[i]).ToArray(), rtol * 10 * scale, rtol, what + " samples");
    }

    [Fact]
    public void Weight_files_that_do_not_fit_name_every_problem()
    {
        var model = Architectures.Get("retinanet_resnet18_fpn").Create();
        using var weights = FormulaWeights.StateDict(model.Parameters.Expected);
        model.Dispose();
        var sd = new Osprey.Core.IO.StateDict();
        foreach (var (k, t) in weights.Entries)
        {
            if (k == "backbone.body.conv1.weight") continue;
            sd.Add(k == "head.regression_head.bbox_reg.bias" ? "head.regression_head.bbox_reg.bias_extra" : k, t.Share());
        }
        sd.Add("backbone.body.bn1.num_batches_tracked", Tensor.FromArray(new long[] { 5 }, []));
        using (sd)
        {
            var e = Assert.Throws<Osprey.Core.IO.WeightFileException>(() => Detector.Create("retinanet_resnet18_fpn", sd, "bad.pth"));
            Assert.Contains("missing (2): backbone.body.conv1.weight, head.regression_head.bbox_reg.bias", e.Message, StringComparison.Ordinal);
            Assert.Contains("unexpected (1): head.regression_head.bbox_reg.bias_extra", e.Message, StringComparison.Ordinal);
            Assert.Contains("bad.pth", e.Message, StringComparison.Ordinal);
        }
        Assert.Contains("unknown architecture 'ssd300_resnet18'", Assert.Throws<ArgumentException>(() => Architectures.Get("ssd300_resnet18")).Message, StringComparison.Ordinal);
        Assert.Empty(Architectures.Planned);
        Assert.Contains("fp16 needs a CUDA device", Assert.Throws<Osprey.Core.OspreyException>(
            () => Detector.Create("retinanet_resnet18_fpn", weights, "w", new DetectorOptions { Precision = Precision.Fp16 })).Message, StringComparison.Ordinal);
        if (Osprey.Tests.Cuda.Gpu.SkipReason is not null)   // without a GPU, asking for one is a clear error, not a fault
            Assert.Contains("no usable CUDA GPU", Assert.Throws<Osprey.Core.OspreyException>(
                () => Detector.Create("retinanet_resnet18_fpn", weights, "w", new DetectorOptions { Device = Device.Cuda(0) })).Message, StringComparison.Ordinal);
    }
}
