using System.Buffers.Binary;
using System.IO.Compression;

using Osprey.Vision.Imaging;

namespace Osprey.Vision.Codecs;

/// <summary>
/// PNG decoding to RGB as PIL's Image.open(f).convert('RGB'): grey is replicated, alpha is dropped (not composited),
/// palettes are looked up (transparency ignored). Supports colour types 0, 2, 3, 4, 6 at bit depth 8, grey and
/// palette at 1, 2 and 4 bits, all five row filters, and checks every chunk CRC. 16-bit and interlaced (Adam7)
/// files are refused with a clear error.
/// </summary>
public static class PngDecoder
{
    private static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    public static bool IsPng(ReadOnlySpan<byte> data) => data.Length >= 8 && data[..8].SequenceEqual(Signature);

    private readonly record struct Header(int Width, int Height, int BitDepth, int ColorType, int Interlace)
    {
        public int Channels => ColorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => 0 };
        public int BitsPerPixel => Channels * BitDepth;
        public long RowBytes => ((long)Width * BitsPerPixel + 7) / 8;
    }

    public static RgbImage Decode(ReadOnlySpan<byte> data, string source = "image")
    {
        if (!IsPng(data)) throw new ImageDecodeException($"{source}: not a PNG file (bad signature)");
        Header? header = null;
        byte[]? palette = null;
        using var idat = new MemoryStream();
        bool ended = false;
        int pos = 8;
        while (!ended)
        {
            if (data.Length - pos < 12) throw Fail(source, $"truncated: chunk header expected at byte {pos} of {data.Length}");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(data[pos..]);
            var type = data.Slice(pos + 4, 4);
            string typeName = System.Text.Encoding.ASCII.GetString(type);
            if (length > int.MaxValue || length > data.Length - pos - 12)
                throw Fail(source, $"truncated: chunk '{typeName}' at byte {pos} claims {length} bytes, {Math.Max(0, data.Length - pos - 12)} remain");
            var body = data.Slice(pos + 8, (int)length);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(data[(pos + 8 + (int)length)..]);
            if (Crc32.Compute(data.Slice(pos + 4, 4 + (int)length)) != crc)
                throw Fail(source, $"chunk '{typeName}' at byte {pos} fails its CRC check");
            switch (typeName)
            {
                case "IHDR":
                    header = ReadHeader(body, source);
                    break;
                case "PLTE":
                    if (length % 3 != 0 || length == 0 || length > 768) throw Fail(source, $"palette of {length} bytes");
                    palette = body.ToArray();
                    break;
                case "IDAT":
                    if (header is null) throw Fail(source, "image data before the header");
                    idat.Write(body);
                    break;
                case "IEND":
                    ended = true;
                    break;
                default:
                    if ((type[0] & 0x20) == 0) throw Fail(source, $"unknown critical chunk '{typeName}'");
                    break;
            }
            if (pos == 8 && typeName != "IHDR") throw Fail(source, "first chunk is not IHDR");
            pos += 12 + (int)length;
        }
        var h = header ?? throw Fail(source, "no IHDR chunk");
        if (h.ColorType == 3 && palette is null) throw Fail(source, "palette image without a PLTE chunk");
        return Unfilter(h, palette, Inflate(idat, h, source), source);
    }

    private static Header ReadHeader(ReadOnlySpan<byte> b, string source)
    {
        if (b.Length != 13) throw Fail(source, $"IHDR has {b.Length} bytes, not 13");
        long w = BinaryPrimitives.ReadUInt32BigEndian(b), ht = BinaryPrimitives.ReadUInt32BigEndian(b[4..]);
        ImageDecoder.CheckSize(source, w, ht);
        var h = new Header((int)w, (int)ht, b[8], b[9], b[12]);
        if (b[10] != 0 || b[11] != 0) throw Fail(source, $"unknown compression {b[10]} or filter method {b[11]}");
        bool valid = h.ColorType switch
        {
            0 => h.BitDepth is 1 or 2 or 4 or 8 or 16,
            3 => h.BitDepth is 1 or 2 or 4 or 8,
            2 or 4 or 6 => h.BitDepth is 8 or 16,
            _ => false,
        };
        if (!valid) throw Fail(source, $"invalid colour type {h.ColorType} with bit depth {h.BitDepth}");
        if (h.BitDepth == 16) throw new ImageDecodeException($"{source}: 16-bit PNG files are not supported");
        if (h.Interlace == 1) throw new ImageDecodeException($"{source}: interlaced (Adam7) PNG files are not supported");
        if (h.Interlace != 0) throw Fail(source, $"unknown interlace method {h.Interlace}");
        return h;
    }

    /// <summary>Inflates exactly height * (1 + row bytes); less is truncation, more is ignored as PIL does.</summary>
    private static byte[] Inflate(MemoryStream idat, Header h, string source)
    {
        long need = h.Height * (1 + h.RowBytes);
        if (need > int.MaxValue) throw Fail(source, $"{h.Width}x{h.Height} image is too large");
        var raw = new byte[need];
        idat.Position = 0;
        int got = 0;
        try
        {
            using var z = new ZLibStream(idat, CompressionMode.Decompress, leaveOpen: true);
            int n;
            while (got < raw.Length && (n = z.Read(raw, got, raw.Length - got)) > 0) got += n;
        }
        catch (InvalidDataException e)
        {
            throw new ImageDecodeException($"{source}: corrupt PNG image data ({e.Message})", e);
        }
        if (got < raw.Length) throw Fail(source, $"truncated image data: {got} of {raw.Length} bytes after inflating");
        return raw;
    }

    private static RgbImage Unfilter(Header h, byte[]? palette, byte[] raw, string source)
    {
        int stride = (int)h.RowBytes;
        int bpp = Math.Max(1, h.BitsPerPixel / 8);
        var prev = new byte[stride];
        var image = new RgbImage(h.Width, h.Height);
        var rgb = image.Pixels;
        for (int y = 0; y < h.Height; y++)
        {
            int start = y * (stride + 1);
            byte filter = raw[start];
            var row = raw.AsSpan(start + 1, stride);
            switch (filter)
            {
                case 0: break;
                case 1: for (int i = bpp; i < stride; i++) row[i] += row[i - bpp]; break;
                case 2: for (int i = 0; i < stride; i++) row[i] += prev[i]; break;
                case 3:
                    for (int i = 0; i < stride; i++) row[i] += (byte)(((i >= bpp ? row[i - bpp] : 0) + prev[i]) >> 1);
                    break;
                case 4:
                    for (int i = 0; i < stride; i++) row[i] += Paeth(i >= bpp ? row[i - bpp] : (byte)0, prev[i], i >= bpp ? prev[i - bpp] : (byte)0);
                    break;
                default: throw Fail(source, $"row {y} has unknown filter type {filter}");
            }
            ToRgb(h, palette, row, rgb.AsSpan(y * h.Width * 3, h.Width * 3), source, y);
            row.CopyTo(prev);
        }
        return image;
    }

    private static byte Paeth(byte a, byte b, byte c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static void ToRgb(Header h, byte[]? palette, ReadOnlySpan<byte> row, Span<byte> rgb, string source, int y)
    {
        int w = h.Width;
        switch (h.ColorType)
        {
            case 2:
                row[..(w * 3)].CopyTo(rgb);
                return;
            case 6:
                for (int x = 0; x < w; x++) { rgb[x * 3] = row[x * 4]; rgb[x * 3 + 1] = row[x * 4 + 1]; rgb[x * 3 + 2] = row[x * 4 + 2]; }
                return;
            case 4:
                for (int x = 0; x < w; x++) rgb[x * 3] = rgb[x * 3 + 1] = rgb[x * 3 + 2] = row[x * 2];
                return;
        }
        // grey or palette, 1/2/4/8 bits per sample, packed from the most significant bit
        int bits = h.BitDepth, mask = (1 << bits) - 1;
        int entries = palette is null ? 0 : palette.Length / 3;
        for (int x = 0; x < w; x++)
        {
            int bit = x * bits;
            int v = (row[bit >> 3] >> (8 - bits - (bit & 7))) & mask;
            if (h.ColorType == 0)
            {
                byte g = (byte)(v * 255 / mask);
                rgb[x * 3] = rgb[x * 3 + 1] = rgb[x * 3 + 2] = g;
            }
            else
            {
                if (v >= entries) throw Fail(source, $"pixel ({x}, {y}) uses palette index {v} of a {entries}-entry palette");
                rgb[x * 3] = palette![v * 3];
                rgb[x * 3 + 1] = palette[v * 3 + 1];
                rgb[x * 3 + 2] = palette[v * 3 + 2];
            }
        }
    }

    private static ImageDecodeException Fail(string source, string problem) => new($"{source}: corrupt PNG ({problem})");
}
