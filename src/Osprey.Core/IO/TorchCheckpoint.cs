using System.IO.Compression;
using System.Runtime.InteropServices;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.IO;

/// <summary>
/// Reads PyTorch checkpoints (torch.save's zip format, PyTorch 1.6 and later) without Python: the pickle is
/// read by the restricted <see cref="Unpickler"/>, which rebuilds only tensors and plain containers.
/// Tensors that shared a storage in PyTorch share one here too; every offset, size and stride is checked
/// against the storage's real length in the archive.
/// </summary>
public static class TorchCheckpoint
{
    private static readonly Dictionary<string, DType> s_storageTypes = new(StringComparer.Ordinal)
    {
        ["FloatStorage"] = DType.Float32, ["HalfStorage"] = DType.Float16, ["BFloat16Storage"] = DType.BFloat16,
        ["CharStorage"] = DType.Int8, ["ByteStorage"] = DType.UInt8, ["IntStorage"] = DType.Int32,
        ["LongStorage"] = DType.Int64, ["BoolStorage"] = DType.Bool,
        ["DoubleStorage"] = DType.Float32, // float64 is read and narrowed to float32
    };

    private static readonly string[] s_allowed =
    [
        // collections.Counter: LR scheduler states in training checkpoints (MultiStepLR milestones, e.g. NVIDIA SSD's);
        // like every allowed global it is never called, only recorded (PyCall)
        "collections.OrderedDict", "collections.Counter", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "torch.Size",
        .. s_storageTypes.Keys.Select(k => "torch." + k),
    ];

    private sealed record StorageRef(string Key, DType DType, long Numel, bool FromDouble);

    /// <summary>
    /// Loads the tensors of a checkpoint as a flat state dict. If the top level is a dict holding a
    /// 'state_dict' or 'model' entry (training checkpoints such as ODTK's), that entry is used; nested dicts
    /// become dotted names. Scalar and string entries elsewhere go to <see cref="StateDict.Metadata"/>.
    /// </summary>
    public static StateDict LoadStateDict(string path)
    {
        ZipArchive zip;
        try { zip = ZipFile.OpenRead(path); }
        catch (InvalidDataException e) { throw new WeightFileException($"{path}: not a readable PyTorch zip checkpoint: {e.Message}", e); }
        using (zip)
        {
            var pkl = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) || e.FullName == "data.pkl")
                ?? throw new WeightFileException($"{path}: no data.pkl in the archive (a legacy pre-1.6 torch.save file? re-save it with a newer PyTorch)");
            string prefix = pkl.FullName[..^"data.pkl".Length];
            var root = new Unpickler(ReadEntry(path, pkl, 256L << 20), s_allowed, PersistentLoad(path), path).Load();

            var storages = new Dictionary<string, Storage>(StringComparer.Ordinal);
            var result = new StateDict();
            try
            {
                var top = root as OrderedDictionary<object, object?>
                    ?? throw new WeightFileException($"{path}: the checkpoint's top level is not a dict");
                object? chosen = top.TryGetValue("state_dict", out var sd) ? sd : top.TryGetValue("model", out var m) && m is OrderedDictionary<object, object?> ? m : top;
                if (!ReferenceEquals(chosen, top))
                    foreach (var (k, v) in top)
                        if (v is string or long or double or bool) result.Metadata[k.ToString()!] = Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture)!;
                Flatten(path, zip, prefix, chosen, "", storages, result);
            }
            catch
            {
                result.Dispose();
                throw;
            }
            finally
            {
                foreach (var s in storages.Values) s.Release();
            }
            return result;
        }
    }

    private static Func<object?, object?> PersistentLoad(string path) => pid =>
    {
        if (pid is not object?[] { Length: 5 } t || t[0] as string != "storage" || t[1] is not PyGlobal type || t[2] is not string key || t[4] is not long numel)
            throw new WeightFileException($"{path}: unexpected persistent id in the pickle");
        if (!s_storageTypes.TryGetValue(type.Name, out var dtype)) throw new WeightFileException($"{path}: unsupported storage type {type}");
        if (numel < 0) throw new WeightFileException($"{path}: storage {key} has negative size {numel}");
        return new StorageRef(key, dtype, numel, type.Name == "DoubleStorage");
    };

    private static void Flatten(string path, ZipArchive zip, string prefix, object? node, string name,
        Dictionary<string, Storage> storages, StateDict result)
    {
        switch (node)
        {
            case OrderedDictionary<object, object?> dict:
                foreach (var (k, v) in dict)
                    Flatten(path, zip, prefix, v, name.Length == 0 ? k.ToString()! : $"{name}.{k}", storages, result);
                break;
            case PyCall call when call.Callable.Name is "_rebuild_tensor_v2" or "_rebuild_parameter":
                result.Add(name, Rebuild(path, zip, prefix, call, name, storages));
                break;
            case string or long or double or bool:
                result.Metadata[name] = Convert.ToString(node, System.Globalization.CultureInfo.InvariantCulture)!;
                break;
            default:
                break; // lists, None and other plain values hold no tensors Osprey loads
        }
    }

    private static Tensor Rebuild(string path, ZipArchive zip, string prefix, PyCall call, string name, Dictionary<string, Storage> storages)
    {
        if (call.Callable.Name == "_rebuild_parameter")
        {
            if (call.Args.Length < 1 || call.Args[0] is not PyCall inner) throw new WeightFileException($"{path}: '{name}': malformed parameter");
            return Rebuild(path, zip, prefix, inner, name, storages);
        }
        var a = call.Args;
        if (a.Length < 4 || a[0] is not StorageRef sref || a[1] is not long offset || a[2] is not object?[] size || a[3] is not object?[] stride || size.Length != stride.Length)
            throw new WeightFileException($"{path}: '{name}': malformed tensor record");
        var dims = new int[size.Length];
        var strides = new long[size.Length];
        long extent = 0;
        for (int i = 0; i < dims.Length; i++)
        {
            if (size[i] is not long s || s < 0 || s > int.MaxValue || stride[i] is not long st || st < 0)
                throw new WeightFileException($"{path}: '{name}': invalid size or stride");
            dims[i] = (int)s;
            strides[i] = st;
            if (s > 0) extent += (s - 1) * st;
        }
        var shape = new Shape(dims);
        if (shape.Numel > 0 && (offset < 0 || offset + extent >= sref.Numel))
            throw new WeightFileException($"{path}: '{name}': shape {shape} at offset {offset} reaches past its storage of {sref.Numel} elements");
        if (!storages.TryGetValue(sref.Key, out var storage))
        {
            storage = LoadStorage(path, zip, prefix, sref);
            storages[sref.Key] = storage;
        }
        storage.AddRef();
        return new Tensor(storage, shape, strides, offset, sref.DType);
    }

    private static unsafe Storage LoadStorage(string path, ZipArchive zip, string prefix, StorageRef s)
    {
        var entry = zip.GetEntry($"{prefix}data/{s.Key}") ?? throw new WeightFileException($"{path}: storage '{s.Key}' is missing from the archive");
        long elem = s.FromDouble ? 8 : s.DType.SizeOf();
        long want = checked(s.Numel * elem);
        if (entry.Length != want)
            throw new WeightFileException($"{path}: storage '{s.Key}' has {entry.Length} bytes, its header says {s.Numel} elements ({want} bytes)");
        var bytes = ReadEntry(path, entry, long.MaxValue);
        var storage = Storage.Allocate(BackendRegistry.Cpu, s.Numel * s.DType.SizeOf());
        var dst = new Span<byte>((void*)storage.Pointer, checked((int)storage.Bytes));
        if (s.FromDouble)
        {
            var src = MemoryMarshal.Cast<byte, double>(bytes);
            var f = MemoryMarshal.Cast<byte, float>(dst);
            for (int i = 0; i < src.Length; i++) f[i] = (float)src[i];
        }
        else bytes.CopyTo(dst);
        return storage;
    }

    private static byte[] ReadEntry(string path, ZipArchiveEntry e, long limit)
    {
        if (e.Length > limit || e.Length > Array.MaxLength) throw new WeightFileException($"{path}: entry {e.FullName} is too large ({e.Length} bytes)");
        var buf = new byte[e.Length];
        using var s = e.Open();
        int n = s.ReadAtLeast(buf, buf.Length, throwOnEndOfStream: false);
        if (n != buf.Length) throw new WeightFileException($"{path}: entry {e.FullName} is truncated ({n} of {buf.Length} bytes)");
        return buf;
    }
}
