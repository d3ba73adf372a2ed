using System.Text.Json;
using Osprey.Vision.Codecs;
using Osprey.Vision.Imaging;
using Osprey.Tests.Support;

namespace Osprey.Tests.Vision;

/// <summary>JPEG (libturbojpeg) and PNG decoding against PIL's Image.open(f).convert('RGB') (tools/golden_images.py).</summary>
public class ImageDecoderTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "images", name);

    internal static string CocoDir => RepoPaths.Shared("data", "coco128", "train2017");

    private static string Fnv(byte[] bytes)
    {
        ulong h = 0xCBF29CE484222325;
        foreach (byte b in bytes) { h ^= b; h *= 0x100000001B3; }
        return h.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
    }

    private static void AssertLikePil(JsonElement want, RgbImage img, string what)
    {
        Assert.Equal(want.GetProperty("width").GetInt32(), img.Width);
        Assert.Equal(want.GetProperty("height").GetInt32(), img.Height);
        long sum = 0;
        foreach (byte b in img.Pixels) sum += b;
        Assert.True(want.GetProperty("sum").GetInt64() == sum, $"{what}: byte sum {sum}, PIL {want.GetProperty("sum").GetInt64()}");
        Assert.True(want.GetProperty("fnv").GetString() == Fnv(img.Pixels), $"{what}: pixels differ from PIL's (same sum)");
    }

    [Fact]
    public void Every_coco128_jpeg_decodes_bit_exactly_as_PIL()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixture("coco128_jpeg.json")));
        int n = 0;
        foreach (var e in doc.RootElement.EnumerateObject())
        {
            var img = ImageDecoder.Decode(Path.Combine(CocoDir, e.Name));
            AssertLikePil(e.Value, img, e.Name);
            n++;
        }
        Assert.Equal(128, n);
    }

    [Fact]
    public void Png_colour_types_bit_depths_and_filters_decode_as_PIL()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixture("png.json")));
        foreach (var e in doc.RootElement.EnumerateObject())
        {
            string path = Fixture(e.Name + ".png");
            if (e.Value.TryGetProperty("error", out var err))
            {
                var ex = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(path));
                Assert.Contains(err.GetString()!, ex.Message, StringComparison.Ordinal);
                Assert.Contains(path, ex.Message, StringComparison.Ordinal);
                continue;
            }
            AssertLikePil(e.Value, ImageDecoder.Decode(path), e.Name);
        }
    }

    public static TheoryData<string, int, string> PngDamage => new()
    {
        { "truncated", 0, "truncated" },
        { "crc", 0, "CRC" },
        { "signature", 0, "not a JPEG or PNG" },
        { "huge", 0, "header claims" },
        { "short_data", 0, "truncated image data" },
        { "bad_filter", 0, "filter" },
    };

    [Theory]
    [MemberData(nameof(PngDamage))]
    public void Damaged_png_files_give_clear_errors(string damage, int unused, string message)
    {
        _ = unused;
        var good = File.ReadAllBytes(Fixture("rgb8.png"));
        byte[] bad = damage switch
        {
            "truncated" => good[..(good.Length - 30)],
            "crc" => Flip(good, 40),
            "signature" => Flip(good, 1),
            "huge" => WithHeader(good, 100000, 100000),
            "short_data" => WithHeader(good, 17, 500),
            "bad_filter" => WithBadFilter(),
            _ => throw new ArgumentException(damage),
        };
        var ex = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(bad, "x.png"));
        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
        Assert.StartsWith("x.png", ex.Message, StringComparison.Ordinal);
    }

    private static byte[] Flip(byte[] b, int at)
    {
        var c = (byte[])b.Clone();
        c[at] ^= 0x5A;
        return c;
    }

    /// <summary>Rewrites IHDR's width and height and fixes its CRC, so only the lie remains.</summary>
    private static byte[] WithHeader(byte[] b, int w, int h)
    {
        var c = (byte[])b.Clone();
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(c.AsSpan(16), w);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(c.AsSpan(20), h);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(29), Crc32.Compute(c.AsSpan(12, 17)));
        return c;
    }

    /// <summary>A valid 1x1 RGB PNG whose only row uses filter type 7.</summary>
    private static byte[] WithBadFilter()
    {
        using var ms = new MemoryStream();
        ms.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        WriteChunk(ms, "IHDR", [0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]);
        using (var z = new MemoryStream())
        {
            using (var zs = new System.IO.Compression.ZLibStream(z, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
                zs.Write([7, 1, 2, 3]);
            WriteChunk(ms, "IDAT", z.ToArray());
        }
        WriteChunk(ms, "IEND", []);
        return ms.ToArray();
    }

    private static void WriteChunk(Stream s, string type, byte[] body)
    {
        var head = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(head, body.Length);
        System.Text.Encoding.ASCII.GetBytes(type, head.AsSpan(4));
        s.Write(head);
        s.Write(body);
        var crcInput = head[4..].Concat(body).ToArray();
        var crc = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32.Compute(crcInput));
        s.Write(crc);
    }

    [Fact]
    public void Damaged_jpeg_files_give_clear_errors()
    {
        var good = File.ReadAllBytes(Path.Combine(CocoDir, "000000000009.jpg"));
        var ex = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(good[..(good.Length / 2)], "half.jpg"));
        Assert.Contains("half.jpg", ex.Message, StringComparison.Ordinal);
        Assert.Contains("JPEG", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(good[..200], "header.jpg"));
        Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(new byte[] { 0xFF, 0xD8, 0xFF, 0, 1, 2, 3 }, "tiny.jpg"));
        var noise = new byte[5000];
        new Random(3).NextBytes(noise);
        noise[0] = 0xFF; noise[1] = 0xD8; noise[2] = 0xFF;
        Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(noise, "noise.jpg"));
        Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode([], "empty"));
        var missing = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode("/nonexistent/x.jpg"));
        Assert.Contains("/nonexistent/x.jpg", missing.Message, StringComparison.Ordinal);
    }
}
