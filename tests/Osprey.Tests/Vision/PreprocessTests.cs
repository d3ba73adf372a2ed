using System.Text.Json;
using Osprey.Core.Tensors;
using Osprey.Vision.Codecs;
using Osprey.Vision.Imaging;
using Osprey.Vision.Transforms;

namespace Osprey.Tests.Vision;

/// <summary>Resize policies and normalisation against torchvision 0.14's GeneralizedRCNNTransform.</summary>
public class PreprocessTests
{
    [Fact]
    public void Torchvision_resize_sizes_match_for_coco_and_awkward_shapes()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "detect", "resize.json")));
        int n = 0;
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            var v = c.EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var policy = new ResizePolicy(ResizeKind.Torchvision, v[0], v[1], 32);
            var got = policy.Resized(v[2], v[3]);
            Assert.True(got == (v[4], v[5]), $"min {v[0]} max {v[1]}, image {v[3]}x{v[2]}: got {got.Width}x{got.Height}, torchvision {v[5]}x{v[4]}");
            n++;
        }
        Assert.True(n > 300);
    }

    [Fact]
    public void Odtk_and_fixed_policies_and_padding()
    {
        Assert.Equal((800, 1066), ResizePolicy.RetinaNetOdtk.Resized(480, 640));
        Assert.Equal((750, 1333), ResizePolicy.RetinaNetOdtk.Resized(600, 1065));  // int(1333 / 1065 * 600)
        Assert.Equal((300, 300), ResizePolicy.Ssd300.Resized(480, 640));
        Assert.Equal(1088, ResizePolicy.RetinaNetTorchvision.Padded(1066));
        Assert.Equal(1152, ResizePolicy.RetinaNetOdtk.Padded(1066));
        Assert.Equal(300, ResizePolicy.Ssd300.Padded(300));
        Assert.Throws<ArgumentException>(() => new ResizePolicy(ResizeKind.Torchvision, 800, 100, 32).Validate());
        Assert.Throws<ArgumentException>(() => ResizePolicy.Ssd300.Resized(0, 5));
    }

    [Fact]
    public void Normalisation_is_torchvision_float32_arithmetic()
    {
        var img = new RgbImage(2, 1);
        new byte[] { 0, 128, 255, 10, 20, 30 }.CopyTo(img.Pixels, 0);
        var pre = new Preprocessor(ResizePolicy.RetinaNetTorchvision, Normalization.ImageNet, Device.Cpu);
        using var t = pre.Normalize(img);
        Assert.Equal(new Shape(1, 3, 1, 2), t.Shape);
        var v = t.ToArray<float>();
        // channel-major: R of both pixels, then G, then B
        Assert.Equal((0 / 255f - 0.485f) / 0.229f, v[0]);
        Assert.Equal((10 / 255f - 0.485f) / 0.229f, v[1]);
        Assert.Equal((128 / 255f - 0.456f) / 0.224f, v[2]);
        Assert.Equal((30 / 255f - 0.406f) / 0.225f, v[5]);
    }

    [Fact]
    public void Normalize_table_gives_the_float_expression_for_every_byte_in_every_channel()
    {
        foreach (var norm in new[] { Normalization.ImageNet, Normalization.Ssd300Vgg })
        {
            var img = new RgbImage(256, 2);
            for (int i = 0; i < 256 * 2 * 3; i++) img.Pixels[i] = (byte)(i / 3 * (1 + 2 * (i % 3)) + 85 * (i % 3));
            var pre = new Preprocessor(ResizePolicy.RetinaNetTorchvision, norm, Device.Cpu);
            using var t = pre.Normalize(img);
            var got = t.ToArray<float>();
            int hw = 512;
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < hw; i++)
                {
                    float want = (img.Pixels[3 * i + c] / 255f - norm.Mean[c]) / norm.Std[c];
                    Assert.True(BitConverter.SingleToInt32Bits(want) == BitConverter.SingleToInt32Bits(got[c * hw + i]),
                        $"channel {c} pixel {i} byte {img.Pixels[3 * i + c]}: {got[c * hw + i]} vs {want}");
                }
            for (int c = 0; c < 3; c++) Assert.Equal(256, Enumerable.Range(0, hw).Select(i => img.Pixels[3 * i + c]).Distinct().Count());
        }
    }
}
