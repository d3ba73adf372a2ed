using Osprey.Detection.Training.Data;
using Osprey.Vision.Imaging;
using Xunit;

namespace Osprey.Tests.Training;

/// <summary><see cref="ColorJitter"/>'s table and Vector256 paths give exactly <see cref="ColorJitterReference"/>'s bytes: every
/// RGB colour (the whole 256^3 cube for hue and saturation), random images 1..40 pixels wide (every vector tail) and
/// extreme factors.</summary>
public class ColorJitterFastTests
{
    private static RgbImage RandomImage(int width, int height, int seed)
    {
        var img = new RgbImage(width, height);
        new Random(seed).NextBytes(img.Pixels);
        return img;
    }

    private static void Same(RgbImage image, Action<RgbImage> fast, Action<byte[]> reference, string what)
    {
        var a = new RgbImage(image.Width, image.Height);
        image.Pixels.CopyTo(a.Pixels, 0);
        var b = (byte[])image.Pixels.Clone();
        fast(a);
        reference(b);
        for (int i = 0; i < b.Length; i++)
            if (a.Pixels[i] != b[i])
                Assert.Fail($"{what} on {image.Width}x{image.Height}: byte {i} (pixel {i / 3}, input {image.Pixels[i - i % 3]},{image.Pixels[i - i % 3 + 1]},{image.Pixels[i - i % 3 + 2]}) fast {a.Pixels[i]}, reference {b[i]}");
    }

    [Fact]
    public void Hue_and_saturation_match_the_reference_on_every_colour()
    {
        var cube = new RgbImage(4096, 4096);
        for (int i = 0; i < 1 << 24; i++)
        {
            cube.Pixels[3 * i] = (byte)(i >> 16); cube.Pixels[3 * i + 1] = (byte)(i >> 8); cube.Pixels[3 * i + 2] = (byte)i;
        }
        foreach (double shift in new[] { 0.1, -0.37 })
            Same(cube, x => ColorJitter.Hue(x, shift), p => ColorJitterReference.Hue(p, shift), $"hue {shift}");
        Same(cube, x => ColorJitter.Saturation(x, 1.37), p => ColorJitterReference.Saturation(p, 1.37), "saturation 1.37");
    }

    [Theory]
    [Trait("Category", "Simd")]                  // scripts/test.sh reruns it with AVX2 / all intrinsics off (the reference path)
    [InlineData(0.0, 0.0, 0.5)]
    [InlineData(1.0, 1.0, -0.5)]
    [InlineData(0.6, 1.4, 0.0)]
    [InlineData(1.4, 0.6, 1e-9)]
    [InlineData(2.9, 7.5, -0.2499)]
    public void Every_part_matches_the_reference_on_random_images_of_every_tail(double f, double g, double shift)
    {
        for (int n = 1; n <= 40; n++)
        {
            var img = RandomImage(n, n % 3 + 1, n);
            Same(img, x => ColorJitter.Brightness(x, f), p => ColorJitterReference.Brightness(p, f), $"brightness {f}");
            Same(img, x => ColorJitter.Contrast(x, g), p => ColorJitterReference.Contrast(p, g), $"contrast {g}");
            Same(img, x => ColorJitter.Saturation(x, g), p => ColorJitterReference.Saturation(p, g), $"saturation {g}");
            Same(img, x => ColorJitter.Hue(x, shift), p => ColorJitterReference.Hue(p, shift), $"hue {shift}");
        }
    }
}
