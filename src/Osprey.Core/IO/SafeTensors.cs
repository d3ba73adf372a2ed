using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Core.IO;

/// <summary>
/// The safetensors format: an 8-byte little-endian header length, a JSON header mapping each name to
/// {dtype, shape, data_offsets [begin, end)} relative to the data section, then the raw little-endian data.
/// Every length and offset read from the file is checked against the file before use.
/// </summary>
public static class SafeTensors
{
    private const long MaxHeaderBytes = 100L << 20;

    private static readonly Dictionary<string, DType> s_dtypes = new(StringComparer.Ordinal)
    {
        ["F32"] = DType.Float32, ["F16"] = DType.Float16, ["BF16"] = DType.BFloat16, ["I8"] = DType.Int8,
        ["U8"] = DType.UInt8, ["I32"] = DType.Int32, ["I64"] = DType.Int64, ["BOOL"] = DType.Bool,
    };

    private static string Code(DType t) => s_dtypes.First(kv => kv.Value == t).Key;

    public static StateDict Load(string path)
    {
        using var handle = File.OpenHandle(path);
        long fileLength = RandomAccess.GetLength(handle);
        if (fileLength < 8) throw Bad(path, $"file is {fileLength} bytes, shorter than the 8-byte header length");
        Span<byte> lenBytes = stackalloc byte[8];
        RandomAccess.Read(handle, lenBytes, 0);
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLen > (ulong)MaxHeaderBytes || (long)headerLen > fileLength - 8)
            throw Bad(path, $"header length {headerLen} does not fit a file of {fileLength} bytes");
        var header = new byte[headerLen];
        if (RandomAccess.Read(handle, header, 8) != header.Length) throw Bad(path, "header truncated");
        long dataStart = 8 + (long)headerLen;
        long dataLength = fileLength - dataStart;

        JsonDocument doc;
        try { doc = JsonDocument.Parse(header); }
        catch (JsonException e) { throw Bad(path, $"header is not valid JSON: {e.Message}"); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad(path, "header is not a JSON object");
            var result = new StateDict();
            try
            {
                foreach (var entry in doc.RootElement.EnumerateObject())
                {
                    if (entry.Name == "__metadata__")
                    {
                        if (entry.Value.ValueKind == JsonValueKind.Object)
                            foreach (var m in entry.Value.EnumerateObject()) result.Metadata[m.Name] = m.Value.ToString();
                        continue;
                    }
                    result.Add(entry.Name, ReadTensor(path, handle, entry.Name, entry.Value, dataStart, dataLength));
                }
            }
            catch
            {
                result.Dispose();
                throw;
            }
            return result;
        }
    }

    private static Tensor ReadTensor(string path, Microsoft.Win32.SafeHandles.SafeFileHandle handle, string name, JsonElement e, long dataStart, long dataLength)
    {
        string where = $"tensor '{name}'";
        if (e.ValueKind != JsonValueKind.Object) throw Bad(path, $"{where}: entry is not an object");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String) throw Bad(path, $"{where}: missing dtype");
        if (!s_dtypes.TryGetValue(dt.GetString()!, out var dtype)) throw Bad(path, $"{where}: unsupported dtype {dt.GetString()}");
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array) throw Bad(path, $"{where}: missing shape");
        var dims = new List<int>();
        foreach (var d in sh.EnumerateArray())
        {
            if (!d.TryGetInt32(out int v) || v < 0) throw Bad(path, $"{where}: invalid dimension {d}");
            dims.Add(v);
        }
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2
            || !off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end))
            throw Bad(path, $"{where}: missing or invalid data_offsets");
        var shape = new Shape(dims.ToArray());
        long bytes;
        try { bytes = checked(shape.Numel * dtype.SizeOf()); }
        catch (OverflowException) { throw Bad(path, $"{where}: shape {shape} is too large"); }
        if (begin < 0 || end < begin || end > dataLength)
            throw Bad(path, $"{where}: data_offsets [{begin}, {end}) outside the {dataLength}-byte data section");
        if (end - begin != bytes)
            throw Bad(path, $"{where}: data_offsets hold {end - begin} bytes but {dtype.Name()} {shape} needs {bytes}");
        var t = Tensor.Empty(shape, dtype);
        try
        {
            var span = HostBytes(t);
            if (RandomAccess.Read(handle, span, dataStart + begin) != span.Length) throw Bad(path, $"{where}: data truncated");
        }
        catch
        {
            t.Dispose();
            throw;
        }
        return t;
    }

    private static unsafe Span<byte> HostBytes(Tensor t) => new((void*)t.DataPointer, checked((int)(t.Numel * t.ElementSize)));

    /// <summary>Writes tensors (any device, any strides) in order; the write goes to a temporary file renamed into place.</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
        using var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var kv in metadata) w.WriteString(kv.Key, kv.Value);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, t) in list)
            {
                long bytes = t.Numel * t.ElementSize;
                w.WriteStartObject(name);
                w.WriteString("dtype", Code(t.DType));
                w.WriteStartArray("shape");
                foreach (int d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + bytes);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += bytes;
            }
            w.WriteEndObject();
        }
        int pad = (int)((8 - json.Length % 8) % 8);
        for (int i = 0; i < pad; i++) json.WriteByte((byte)' ');

        string tmp = path + ".tmp";
        using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)json.Length);
            f.Write(len);
            json.Position = 0;
            json.CopyTo(f);
            foreach (var (_, t) in list)
            {
                using var host = Op.To(t, Device.Cpu);
                f.Write(HostBytes(host));
            }
        }
        File.Move(tmp, path, overwrite: true);
    }

    public static void Save(string path, StateDict dict)
    {
        ArgumentNullException.ThrowIfNull(dict);
        Save(path, dict.Entries, dict.Metadata);
    }

    private static WeightFileException Bad(string path, string problem) => new($"{path}: not a valid safetensors file: {problem}");
}
