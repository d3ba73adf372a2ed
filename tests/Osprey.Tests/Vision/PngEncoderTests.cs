using System.Buffers.Binary;
using System.IO.Compression;
using Osprey.Vision.Imaging;

namespace Osprey.Tests.Vision;

/// <summary>PNG files are checked by parsing them back: signature, chunk lengths and CRCs, IHDR fields, and the zlib
/// stream inflated and un-filtered to the original pixels.</summary>
public class PngEncoderTests
{
    [Fact]
    public void Crc32_matches_the_standard_check_value() =>
        Assert.Equal(0xCBF43926u, Crc32.Compute("123456789"u8)); // the CRC-32/ISO-HDLC check value

    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 3)]
    [InlineData(64, 33)]
    [InlineData(301, 2)]
    public void Round_trips_through_a_strict_reader(int w, int h)
    {
        var img = new RgbImage(w, h);
        var rng = new Random(w * 1000 + h);
        rng.NextBytes(img.Pixels);
        var png = PngEncoder.Encode(img);
        var back = Decode(png);
        Assert.Equal(w, back.Width);
        Assert.Equal(h, back.Height);
        Assert.Equal(img.Pixels, back.Pixels);
    }

    /// <summary>A minimal PNG reader for 8-bit RGB, non-interlaced files; it checks every CRC and handles all 5 filters.</summary>
    internal static RgbImage Decode(byte[] png)
    {
        Assert.True(png.AsSpan(0, 8).SequenceEqual(PngEncoder.Signature), "PNG signature");
        int pos = 8, w = 0, h = 0;
        var idat = new MemoryStream();
        bool end = false;
        while (!end)
        {
            int len = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            var type = System.Text.Encoding.ASCII.GetString(png, pos + 4, 4);
            var data = png.AsSpan(pos + 8, len);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos + 8 + len));
            Assert.Equal(Crc32.Compute(png.AsSpan(pos + 4, 4 + len)), crc);
            switch (type)
            {
                case "IHDR":
                    w = BinaryPrimitives.ReadInt32BigEndian(data);
                    h = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                    Assert.Equal(new byte[] { 8, 2, 0, 0, 0 }, data[8..13].ToArray());
                    break;
                case "IDAT": idat.Write(data); break;
                case "IEND": end = true; break;
            }
            pos += 12 + len;
        }
        Assert.Equal(png.Length, pos);
        idat.Position = 0;
        using var z = new ZLibStream(idat, CompressionMode.Decompress);
        var raw = new MemoryStream();
        z.CopyTo(raw);
        var bytes = raw.ToArray();
        int stride = w * 3;
        Assert.Equal((stride + 1) * h, bytes.Length);
        var img = new RgbImage(w, h);
        var prev = new byte[stride];
        for (int y = 0; y < h; y++)
        {
            byte filter = bytes[y * (stride + 1)];
            var line = bytes.AsSpan(y * (stride + 1) + 1, stride);
            var cur = img.Row(y);
            for (int i = 0; i < stride; i++)
            {
                int a = i >= 3 ? cur[i - 3] : 0, b = prev[i], c = i >= 3 ? prev[i - 3] : 0;
                int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
                int pred = filter switch
                {
                    0 => 0, 1 => a, 2 => b, 3 => (a + b) / 2,
                    4 => pa <= pb && pa <= pc ? a : pb <= pc ? b : c,
                    _ => throw new Xunit.Sdk.XunitException($"bad filter {filter} on row {y}"),
                };
                cur[i] = (byte)(line[i] + pred);
            }
            cur.CopyTo(prev);
        }
        return img;
    }
}
