using Osprey.Vision.Imaging;

namespace Osprey.Vision.Codecs;

/// <summary>An image file could not be decoded: unreadable, truncated, corrupt or of an unsupported kind. The message names the file.</summary>
public sealed class ImageDecodeException : Core.OspreyException
{
    public ImageDecodeException() { }
    public ImageDecodeException(string message) : base(message) { }
    public ImageDecodeException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Decodes JPEG and PNG files to RGB, chosen by the file's first bytes, as PIL's Image.open(f).convert('RGB') does (EXIF orientation is not applied).</summary>
public static class ImageDecoder
{
    /// <summary>Largest image accepted (pixels); a header claiming more is treated as corrupt rather than allocated.</summary>
    public const long MaxPixels = 1L << 28;

    public static RgbImage Decode(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] data;
        try
        {
            data = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageDecodeException($"{path}: cannot read the file ({e.Message})", e);
        }
        return Decode(data, path);
    }

    /// <param name="data">The encoded file.</param>
    /// <param name="source">Name used in error messages.</param>
    public static RgbImage Decode(ReadOnlySpan<byte> data, string source = "image")
    {
        if (PngDecoder.IsPng(data)) return PngDecoder.Decode(data, source);
        if (JpegDecoder.IsJpeg(data)) return JpegDecoder.Decode(data, source);
        throw new ImageDecodeException($"{source}: not a JPEG or PNG file ({data.Length} bytes, starts with {Convert.ToHexString(data[..Math.Min(8, data.Length)])})");
    }

    internal static void CheckSize(string source, long width, long height)
    {
        if (width <= 0 || height <= 0 || width * height > MaxPixels)
            throw new ImageDecodeException($"{source}: header claims a {width}x{height} image (limit {MaxPixels:N0} pixels)");
    }
}
