using Osprey.Vision.Imaging;

namespace Osprey.Vision.Codecs;

/// <summary>
/// JPEG decoding through libturbojpeg with libjpeg's defaults (accurate integer DCT, fancy upsampling), as PIL
/// decodes: the same libjpeg-turbo gives the same pixels. Grey JPEGs come out with R = G = B. CMYK/YCCK files
/// are refused. Any libjpeg warning (for example a truncated file) is an error, so damaged files are reported
/// rather than silently padded with grey.
/// </summary>
public static class JpegDecoder
{
    public static bool IsJpeg(ReadOnlySpan<byte> data) => data.Length >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;

    public static unsafe RgbImage Decode(ReadOnlySpan<byte> data, string source = "image")
    {
        if (!IsJpeg(data)) throw new ImageDecodeException($"{source}: not a JPEG file (no SOI marker)");
        using var tj = new TurboJpegHandle();
        fixed (byte* src = data)
        {
            var size = new System.Runtime.InteropServices.CULong((nuint)data.Length);
            if (TurboJpegNative.tjDecompressHeader3(tj.DangerousGetHandle(), src, size, out int w, out int h, out _, out int colorspace) != 0)
                throw new ImageDecodeException($"{source}: corrupt JPEG header ({tj.LastError()})");
            ImageDecoder.CheckSize(source, w, h);
            if (colorspace is TurboJpegNative.ColorspaceCmyk or TurboJpegNative.ColorspaceYcck)
                throw new ImageDecodeException($"{source}: CMYK/YCCK JPEG files are not supported");
            var image = new RgbImage(w, h);
            fixed (byte* dst = image.Pixels)
            {
                if (TurboJpegNative.tjDecompress2(tj.DangerousGetHandle(), src, size, dst, w, w * 3, h, TurboJpegNative.PixelFormatRgb, 0) != 0)
                {
                    string kind = TurboJpegNative.tjGetErrorCode(tj.DangerousGetHandle()) == TurboJpegNative.ErrorWarning ? "damaged" : "corrupt";
                    throw new ImageDecodeException($"{source}: {kind} JPEG data ({tj.LastError()})");
                }
            }
            return image;
        }
    }
}
