using System.Text.Json;
using Osprey.Core.IO;
using Osprey.Core.Tensors;
using Osprey.Detection.Models;
using Osprey.Tests.Support;
using Osprey.Tests.Vision;

namespace Osprey.Tests.Detection;

/// <summary>`osprey infer` end to end on the CPU with formula weights at a tiny input size, including bad inputs.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class InferCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("osprey-infer-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private string Weights()
    {
        var model = Architectures.Get("retinanet_resnet18_fpn").Create();
        model.Dispose();
        using var sd = FormulaWeights.StateDict(model.Parameters.Expected);
        string path = Path.Combine(_dir, "r18.safetensors");
        SafeTensors.Save(path, sd);
        return path;
    }

    [Fact]
    public void Writes_coco_results_reports_bad_files_and_exits_1()
    {
        string weights = Weights();
        string images = Path.Combine(_dir, "images");
        Directory.CreateDirectory(images);
        var good = File.ReadAllBytes(Path.Combine(ImageDecoderTests.CocoDir, "000000000009.jpg"));
        File.WriteAllBytes(Path.Combine(images, "000000000009.jpg"), good);
        File.WriteAllBytes(Path.Combine(images, "000000000025.jpg"), good[..(good.Length / 3)]);   // truncated
        File.WriteAllText(Path.Combine(images, "000000000030.png"), "not an image");
        string output = Path.Combine(_dir, "out", "dets.json"), draw = Path.Combine(_dir, "draw");
        int rc = Osprey.Cli.Program.Main(["infer", "--arch", "retinanet_resnet18_fpn", "--weights", weights, "--images", images, Path.Combine(_dir, "missing.jpg"),
            "--output", output, "--resize", "64", "--max-size", "96", "--batch", "2", "--max-detections", "50", "--draw", draw]);
        Assert.Equal(1, rc);
        using var doc = JsonDocument.Parse(File.ReadAllText(output));
        var dets = doc.RootElement.EnumerateArray().ToArray();
        Assert.InRange(dets.Length, 1, 50);
        foreach (var d in dets)
        {
            Assert.Equal(9, d.GetProperty("image_id").GetInt64());
            Assert.InRange(d.GetProperty("category_id").GetInt32(), 0, 90);
            var b = d.GetProperty("bbox").EnumerateArray().Select(v => v.GetDouble()).ToArray();
            Assert.True(b[0] >= 0 && b[1] >= 0 && b[2] >= 0 && b[3] >= 0 && b[0] + b[2] <= 640.01 && b[1] + b[3] <= 480.01, $"bbox {string.Join(",", b)} outside 640x480");
            Assert.InRange(d.GetProperty("score").GetDouble(), 0.05, 1);
        }
        Assert.True(File.Exists(Path.Combine(draw, "000000000009.png")));

        // with annotations: ids by file name, and only the annotations' categories (torchvision's 91 labels include unused ids)
        string annotations = Path.Combine(ImageDecoderTests.CocoDir, "..", "annotations", "instances_train2017.json");
        var console = new StringWriter();
        var saved = Console.Out;
        Console.SetOut(console);
        try
        {
            rc = Osprey.Cli.Program.Main(["infer", "--arch", "retinanet_resnet18_fpn", "--weights", weights, "--images", Path.Combine(images, "000000000009.jpg"),
                "--annotations", annotations, "--output", output, "--resize", "64", "--max-size", "96"]);
        }
        finally { Console.SetOut(saved); }
        Assert.Equal(0, rc);
        // the detections were evaluated against the annotations right after inference (COCOeval's summary layout)
        Assert.Contains(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = ", console.ToString(), StringComparison.Ordinal);
        using var gt = JsonDocument.Parse(File.ReadAllText(annotations));
        var categories = gt.RootElement.GetProperty("categories").EnumerateArray().Select(c => c.GetProperty("id").GetInt32()).ToHashSet();
        using var doc2 = JsonDocument.Parse(File.ReadAllText(output));
        Assert.NotEmpty(doc2.RootElement.EnumerateArray());
        Assert.All(doc2.RootElement.EnumerateArray(), d => Assert.Contains(d.GetProperty("category_id").GetInt32(), categories));
    }

    [Theory]
    [InlineData("--device", "cuda:99")]
    [InlineData("--device", "tpu")]
    [InlineData("--precision", "fp16")]
    [InlineData("--precision", "int8")]
    [InlineData("--arch", "ssd300_resnet18")]
    [InlineData("--batch", "0")]
    [InlineData("--score-threshold", "2")]
    public void Unusable_settings_exit_2_before_any_work(string option, string value)
    {
        var args = new Dictionary<string, string>
        {
            ["--arch"] = "retinanet_resnet18_fpn", ["--weights"] = Path.Combine(_dir, "none.pth"),
            ["--images"] = _dir, ["--output"] = Path.Combine(_dir, "o.json"),
        };
        args[option] = value;
        Assert.Equal(2, Osprey.Cli.Program.Main(["infer", .. args.SelectMany(kv => new[] { kv.Key, kv.Value })]));
        Assert.False(File.Exists(Path.Combine(_dir, "o.json")));
    }

    [Fact]
    public void Settings_errors_name_the_option()
    {
        var ok = new Osprey.Cli.Commands.InferSettings("retinanet_resnet18_fpn", "w", ["d"], null, "o", "cpu", 1, "fp32", null, null, null, null, null, null);
        var arch = Architectures.Get(ok.Arch);
        var o = ok.ToDetectorOptions(arch);
        Assert.Equal(Osprey.Detection.Boxes.PostProcessOptions.RetinaNetTorchvision, o.PostProcess);
        Assert.Equal(800, o.Resize!.MinSize);
        var gpu = (ok with { Device = "cuda:1", Precision = "fp16" }).ToDetectorOptions(arch);
        Assert.Equal((Device.Cuda(1), Osprey.Detection.Precision.Fp16), (gpu.Device, gpu.Precision));
        Assert.Equal(Device.Cuda(0), (ok with { Device = "cuda" }).ToDetectorOptions(arch).Device);
        Assert.Contains("--device tpu", Assert.Throws<ArgumentException>(() => (ok with { Device = "tpu" }).ToDetectorOptions(arch)).Message, StringComparison.Ordinal);
        Assert.Contains("--precision fp16 needs a GPU", Assert.Throws<ArgumentException>(() => (ok with { Precision = "fp16" }).ToDetectorOptions(arch)).Message, StringComparison.Ordinal);
        Assert.Contains("--precision int8", Assert.Throws<ArgumentException>(() => (ok with { Precision = "int8" }).ToDetectorOptions(arch)).Message, StringComparison.Ordinal);
        Assert.Contains("--batch 0", Assert.Throws<ArgumentException>(() => (ok with { Batch = 0 }).ToDetectorOptions(arch)).Message, StringComparison.Ordinal);
        Assert.Contains("score threshold", Assert.Throws<ArgumentException>(() => (ok with { ScoreThreshold = 2 }).ToDetectorOptions(arch)).Message, StringComparison.Ordinal);
        Assert.Contains("--max-size", Assert.Throws<ArgumentException>(() => (ok with { MaxSize = 500 }).ToDetectorOptions(Architectures.Get("ssd300_vgg16"))).Message, StringComparison.Ordinal);
        var ssd = (ok with { Resize = 512 }).ToDetectorOptions(Architectures.Get("ssd300_vgg16"));
        Assert.Equal((512, 512), ssd.Resize!.Resized(480, 640));
    }

    /// <summary>
    /// The NVIDIA architectures end to end: ODTK's MobileNetV2-FPN with its 128-pixel padding and NVIDIA SSD300 at 300x300;
    /// category ids must be COCO ids (both models number 80 classes otherwise) and boxes inside the image.
    /// </summary>
    [Theory]
    [InlineData("retinanet_mobilenetv2_fpn", 100)]
    [InlineData("ssd300_resnet50", 200)]
    public void Nvidia_architectures_write_coco_category_ids(string arch, int maxDetections)
    {
        var model = Architectures.Get(arch).Create();
        model.Dispose();
        string weights = Path.Combine(_dir, arch + ".safetensors");
        using (var sd = FormulaWeights.StateDict(model.Parameters.Expected)) SafeTensors.Save(weights, sd);
        string output = Path.Combine(_dir, arch + ".json");
        string[] extra = arch.StartsWith("retina", StringComparison.Ordinal) ? ["--resize", "160", "--max-size", "256"] : [];
        int rc = Osprey.Cli.Program.Main(["infer", "--arch", arch, "--weights", weights, "--images", Path.Combine(ImageDecoderTests.CocoDir, "000000000009.jpg"),
            "--output", output, .. extra]);
        Assert.Equal(0, rc);
        using var doc = JsonDocument.Parse(File.ReadAllText(output));
        var dets = doc.RootElement.EnumerateArray().ToArray();
        Assert.InRange(dets.Length, 1, maxDetections);
        var coco = Osprey.Detection.Boxes.CocoCategories.Ids.ToHashSet();
        foreach (var d in dets)
        {
            Assert.Contains(d.GetProperty("category_id").GetInt32(), coco);
            var b = d.GetProperty("bbox").EnumerateArray().Select(v => v.GetDouble()).ToArray();
            // ODTK boxes are clamped to the padded input, so they may reach past the image by the padding; DLE's are not clamped
            Assert.True(b[2] >= 0 && b[3] >= 0, $"bbox {string.Join(",", b)}");
        }
    }
}
