using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Vision.Codecs;
using Osprey.Vision.Imaging;

namespace Osprey.Vision.Transforms;

/// <summary>Per-channel mean and standard deviation applied to pixels scaled to [0, 1].</summary>
public sealed record Normalization(float[] Mean, float[] Std)
{
    /// <summary>ImageNet statistics (torchvision RetinaNet, ODTK).</summary>
    public static Normalization ImageNet { get; } = new([0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]);

    /// <summary>torchvision ssd300_vgg16: mean (0.48235, 0.45882, 0.40784), std 1/255.</summary>
    public static Normalization Ssd300Vgg { get; } = new([0.48235f, 0.45882f, 0.40784f], [(float)(1.0 / 255.0), (float)(1.0 / 255.0), (float)(1.0 / 255.0)]);

    public void Validate()
    {
        if (Mean.Length != 3 || Std.Length != 3) throw new ArgumentException("normalization needs 3 means and 3 standard deviations");
        foreach (float s in Std) if (!(s > 0)) throw new ArgumentException($"normalization: standard deviation {s} must be positive");
    }
}

/// <summary>A padded batch ready for a network, with each image's resized and original size.</summary>
public sealed class ImageBatch(Tensor images, (int Height, int Width)[] resized, (int Height, int Width)[] original) : IDisposable
{
    /// <summary>[N, 3, H, W] float32, normalised, zero-padded at the bottom and right.</summary>
    public Tensor Images { get; } = images;
    public (int Height, int Width)[] Resized { get; } = resized;
    public (int Height, int Width)[] Original { get; } = original;

    public void Dispose() => Images.Dispose();
}

/// <summary>
/// torchvision's GeneralizedRCNNTransform for inference: pixels / 255, (x - mean) / std in float32 (on the host,
/// where the image is decoded), bilinear resize (align_corners=False) of the normalised image by
/// <see cref="ResizePolicy"/>, then zero padding into one batch whose height and width are multiples of the
/// policy's divisor.
/// </summary>
public sealed class Preprocessor
{
    public Preprocessor(ResizePolicy resize, Normalization normalization, Device device)
    {
        ArgumentNullException.ThrowIfNull(resize);
        ArgumentNullException.ThrowIfNull(normalization);
        resize.Validate();
        normalization.Validate();
        Resize = resize;
        Normalization = normalization;
        Device = device;
    }

    public ResizePolicy Resize { get; }
    public Normalization Normalization { get; }
    public Device Device { get; }

    /// <summary>An image as a normalised [1, 3, H, W] float32 tensor on the device.</summary>
    public Tensor Normalize(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        int hw = image.Width * image.Height;
        var data = new float[3 * hw];
        var px = image.Pixels;
        Span<float> table = stackalloc float[256];
        for (int c = 0; c < 3; c++)
        {
            // the value depends on the byte alone: a 256-entry table of the same float expression (bit-identical, no divisions per pixel)
            float m = Normalization.Mean[c], s = Normalization.Std[c];
            for (int v = 0; v < 256; v++) table[v] = (v / 255f - m) / s;
            var plane = data.AsSpan(c * hw, hw);
            for (int i = 0; i < hw; i++) plane[i] = table[px[i * 3 + c]];
        }
        using var host = Tensor.FromSpan<float>(data, new Shape(1, 3, image.Height, image.Width));
        return Op.To(host, Device);
    }

    public ImageBatch Batch(IReadOnlyList<RgbImage> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) throw new ArgumentException("preprocess: no images");
        var resized = new Tensor[images.Count];
        var sizes = new (int, int)[images.Count];
        var original = new (int, int)[images.Count];
        try
        {
            int maxH = 0, maxW = 0;
            for (int i = 0; i < images.Count; i++)
            {
                var img = images[i];
                original[i] = (img.Height, img.Width);
                var (h, w) = Resize.Resized(img.Height, img.Width);
                sizes[i] = (h, w);
                using var x = Normalize(img);
                resized[i] = h == img.Height && w == img.Width ? x.Share() : Op.Resize(x, h, w, ResizeMode.Bilinear);
                maxH = Math.Max(maxH, h);
                maxW = Math.Max(maxW, w);
            }
            var batch = Tensor.Zeros(new Shape(images.Count, 3, Resize.Padded(maxH), Resize.Padded(maxW)), DType.Float32, Device);
            for (int i = 0; i < images.Count; i++)
            {
                using var n = batch.Slice(0, i, i + 1);
                using var hslice = n.Slice(2, 0, sizes[i].Item1);
                using var dst = hslice.Slice(3, 0, sizes[i].Item2);
                Op.CopyInto(resized[i], dst);
            }
            return new ImageBatch(batch, sizes, original);
        }
        finally
        {
            foreach (var t in resized) t?.Dispose();
        }
    }
}
