using System.CommandLine;
using Osprey.Detection.Training.Loop;

namespace Osprey.Cli.Commands;

/// <summary>`osprey train`'s augmentation options (--flip, --crop, --rotate90, --color; --jitter stays with the sizes).</summary>
public sealed record TrainAugmentArgs(double Flip = 0.5, bool Crop = false, bool Rotate90 = false, double[]? Color = null)
{
    /// <summary>The options, added to a command.</summary>
    internal sealed class Options
    {
        public readonly Option<double> Flip = new("--flip") { Description = "horizontal flip probability per image", DefaultValueFactory = _ => 0.5 };
        public readonly Option<bool> Crop = new("--crop") { Description = "random crop per image (torchvision RandomIoUCrop: boxes whose centre leaves the window dropped, the rest clipped)" };
        public readonly Option<bool> Rotate90 = new("--rotate90") { Description = "rotate each image by 0, 90, 180 or 270 degrees (boxes rotated)" };
        public readonly Option<double[]?> Color = new("--color") { Description = "B C S H: colour jitter ranges (brightness, contrast, saturation, hue; torchvision ColorJitter)", AllowMultipleArgumentsPerToken = true };

        public void AddTo(Command cmd)
        {
            cmd.Options.Add(Flip);
            cmd.Options.Add(Crop);
            cmd.Options.Add(Rotate90);
            cmd.Options.Add(Color);
        }

        public TrainAugmentArgs Read(ParseResult r) => new(r.GetValue(Flip), r.GetValue(Crop), r.GetValue(Rotate90), r.GetValue(Color));
    }

    /// <summary><paramref name="o"/> with these augmentations; throws ArgumentException naming the option on a bad value.</summary>
    public TrainOptions ApplyTo(TrainOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        if (Color is { Length: not (0 or 4) }) throw new ArgumentException($"--color takes four ranges (B C S H), got {Color.Length}");
        var color = Color is { Length: 4 } ? new ColorRanges(Color[0], Color[1], Color[2], Color[3]) : default;
        return o with { FlipProbability = Flip, Crop = Crop, Rotate90 = Rotate90, Color = color };
    }
}
