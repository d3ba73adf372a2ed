using System.Globalization;
using Osprey.Detection.Training.Data;
using Osprey.Vision.Transforms;

namespace Osprey.Detection.Training.Loop;

/// <summary>torchvision ColorJitter ranges: brightness, contrast and saturation factors uniform in [max(0, 1 - v), 1 + v], hue
/// shift uniform in [-hue, hue] turns. All zero: no colour jitter.</summary>
public readonly record struct ColorRanges(double Brightness, double Contrast, double Saturation, double Hue)
{
    public bool Any => Brightness != 0 || Contrast != 0 || Saturation != 0 || Hue != 0;
}

/// <summary>
/// The training loop's augmentation, built from <see cref="TrainOptions"/>, applied per image by the data loader in ODTK's
/// order: resize jitter, crop, rotation, flip, colour. Every draw comes from the loader's per-sample stream seeded by
/// (seed, epoch, image index); since the batch order depends only on (seed, epoch), that identifies the iteration and the
/// image, so a resumed run draws exactly what an uninterrupted one would.
/// <list type="bullet">
/// <item>--jitter MIN MAX (ODTK): each image draws its shorter side with randint(MIN, MAX) (both ends included), ratio =
/// size / shorter side, reduced so the longer side stays within --max-size, sides int(ratio x side), 8-bit bilinear resize
/// (ODTK resizes the PIL image); the network transform then only pads (<see cref="ResizeKind.Keep"/>).</item>
/// <item>--crop: torchvision's RandomIoUCrop (<see cref="Augment.IouCrop"/>): boxes whose centre leaves the window are
/// dropped, the rest clipped to it.</item>
/// <item>--rotate90: 0/90/180/270 degrees counter-clockwise, uniform (ODTK --augment-rotate), boxes rotated.</item>
/// <item>--flip P: horizontal flip with probability P (ODTK and torchvision: 0.5).</item>
/// <item>--color B C S H: ColorJitter, its four parts in a random order.</item>
/// </list>
/// </summary>
public static class TrainAugmentation
{
    public static AugmentOptions For(TrainOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        return new AugmentOptions
        {
            JitterMin = o.JitterMin, JitterMax = o.JitterMax, MaxSize = o.MaxSize, FlipProbability = o.FlipProbability,
            IouCrop = o.Crop, Rotate90 = o.Rotate90,
            Brightness = o.Color.Brightness, Contrast = o.Color.Contrast, Saturation = o.Color.Saturation, Hue = o.Color.Hue,
        };
    }

    /// <summary>The network transform's resize: none when the images were jittered per image (only padding to 32), else
    /// torchvision's at --resize / --max-size.</summary>
    public static ResizePolicy NetworkResize(TrainOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        return o.JitterMax > 0
            ? new ResizePolicy(ResizeKind.Keep, o.JitterMax, o.MaxSize, ResizePolicy.RetinaNetTorchvision.SizeDivisible)
            : ResizePolicy.RetinaNetTorchvision with { MinSize = o.Resize, MaxSize = o.MaxSize };
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the option on a bad augmentation value.</summary>
    internal static void Validate(TrainOptions o)
    {
        if (!(o.FlipProbability is >= 0 and <= 1))
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"--flip {o.FlipProbability}: a probability in [0, 1]"));
        var c = o.Color;
        if (!(c.Brightness >= 0 && c.Contrast >= 0 && c.Saturation >= 0 && c.Hue is >= 0 and <= 0.5)
            || !double.IsFinite(c.Brightness) || !double.IsFinite(c.Contrast) || !double.IsFinite(c.Saturation))
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"--color {c.Brightness} {c.Contrast} {c.Saturation} {c.Hue}: brightness, contrast and saturation must be finite and >= 0, hue in [0, 0.5]"));
    }
}
