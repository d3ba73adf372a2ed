using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.IO;

[Collection(MemoryCountersCollection.MemoryCounters)]
public class WeightFileTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "weights", name);

    /// <summary>The formula tools/golden_weights.py used: arange(n) / 2 - 3.</summary>
    private static float[] Ramp(int n) => Enumerable.Range(0, n).Select(i => i / 2f - 3f).ToArray();

    [Fact]
    public void Reads_a_torch_state_dict_with_views_and_every_dtype()
    {
        using var sd = WeightFile.Load(Fixture("state_dict.pth"));
        Assert.Equal(["conv.weight", "conv.weight_t", "fc.bias", "half", "bf16", "double", "bn.num_batches_tracked", "mask", "bytes", "param"], sd.Keys);
        Assert.Equal(new Shape(2, 3, 3, 3), sd["conv.weight"].Shape);
        Assert.Equal(Ramp(54), sd["conv.weight"].ToArray<float>());
        var t = sd["conv.weight_t"];
        Assert.Same(sd["conv.weight"].Storage, t.Storage);
        Assert.Equal(new Shape(27, 2), t.Shape);
        Assert.Equal(Ramp(54)[27 + 5], t.ToArray<float>()[5 * 2 + 1]);
        Assert.Equal(Ramp(10)[4..9], sd["fc.bias"].ToArray<float>());
        Assert.Equal(Ramp(7).Select(v => (Half)v), sd["half"].ToArray<Half>());
        Assert.Equal(Ramp(5), sd["bf16"].ToArray<BFloat16>().Select(b => b.ToFloat()));
        Assert.Equal(Ramp(3), sd["double"].ToArray<float>());
        Assert.Equal(0, sd["bn.num_batches_tracked"].Rank);
        Assert.Equal(42L, sd["bn.num_batches_tracked"].Item<long>());
        Assert.Equal([true, false, true], sd["mask"].ToArray<bool>());
        Assert.Equal(new byte[] { 0, 1, 2, 3 }, sd["bytes"].ToArray<byte>());
        Assert.Equal(Ramp(4), sd["param"].ToArray<float>());
    }

    [Fact]
    public void Odtk_style_checkpoints_use_their_state_dict_and_keep_scalars_as_metadata()
    {
        using var sd = WeightFile.Load(Fixture("odtk_style.pth"));
        Assert.Equal(["w"], sd.Keys);
        Assert.Equal(Ramp(6), sd["w"].ToArray<float>());
        Assert.Equal("ResNet50FPN", sd.Metadata["backbone"]);
        Assert.Equal("1234", sd.Metadata["iteration"]);
    }

    [Fact]
    public void A_pickle_that_calls_os_system_is_refused()
    {
        var e = Assert.Throws<WeightFileException>(() => WeightFile.Load(Fixture("evil.pth")));
        Assert.Contains("not allowed", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Nothing_leaks_when_loading_fails_or_succeeds()
    {
        long before = BackendRegistry.Cpu.Memory.LiveAllocations;
        using (WeightFile.Load(Fixture("state_dict.pth"))) { }
        Assert.ThrowsAny<WeightFileException>(() => WeightFile.Load(Fixture("evil.pth")));
        Assert.Equal(before, BackendRegistry.Cpu.Memory.LiveAllocations);
    }

    [Fact]
    public void A_storage_shorter_than_its_header_says_is_an_error()
    {
        string path = Path.Combine(Path.GetTempPath(), $"osprey-lying-{Guid.NewGuid():N}.pth");
        try
        {
            using (var src = ZipFile.OpenRead(Fixture("odtk_style.pth")))
            using (var dst = ZipFile.Open(path, ZipArchiveMode.Create))
                foreach (var e in src.Entries)
                {
                    using var from = e.Open();
                    using var ms = new MemoryStream();
                    from.CopyTo(ms);
                    var bytes = ms.ToArray();
                    if (e.FullName.Contains("/data/", StringComparison.Ordinal)) bytes = bytes[..^4];
                    using var to = dst.CreateEntry(e.FullName, CompressionLevel.NoCompression).Open();
                    to.Write(bytes);
                }
            var ex = Assert.Throws<WeightFileException>(() => WeightFile.Load(path));
            Assert.Contains("header says", ex.Message, StringComparison.Ordinal);
        }
        finally { File.Delete(path); }
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.9)]
    public void A_truncated_checkpoint_is_an_error_not_a_crash(double keep)
    {
        string path = Path.Combine(Path.GetTempPath(), $"osprey-cut-{Guid.NewGuid():N}.pth");
        try
        {
            var bytes = File.ReadAllBytes(Fixture("state_dict.pth"));
            File.WriteAllBytes(path, bytes[..(int)(bytes.Length * keep)]);
            Assert.ThrowsAny<WeightFileException>(() => WeightFile.Load(path));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Safetensors_round_trips_views_and_dtypes()
    {
        string path = Path.Combine(Path.GetTempPath(), $"osprey-{Guid.NewGuid():N}.safetensors");
        try
        {
            using (var src = WeightFile.Load(Fixture("state_dict.pth")))
            {
                SafeTensors.Save(path, src.Entries, new Dictionary<string, string> { ["format"] = "pt" });
                using var back = WeightFile.Load(path);
                Assert.Equal(src.Keys, back.Keys);
                Assert.Equal("pt", back.Metadata["format"]);
                foreach (var (name, t) in src.Entries)
                {
                    Assert.Equal(t.Shape, back[name].Shape);
                    Assert.Equal(t.DType, back[name].DType);
                    Assert.True(back[name].IsContiguous());
                }
                Assert.Equal(src["conv.weight_t"].ToArray<float>(), back["conv.weight_t"].ToArray<float>());
                Assert.Equal(src["bf16"].ToArray<BFloat16>(), back["bf16"].ToArray<BFloat16>());
            }
            // the header is padded to 8 bytes as the format asks
            var raw = File.ReadAllBytes(path);
            Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(raw) % 8);
        }
        finally { File.Delete(path); }
    }

    [Theory]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "outside")]      // data shorter than offsets
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16, "needs 12")]   // size disagrees with shape
    [InlineData("{\"w\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, "unsupported dtype")]
    [InlineData("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "missing dtype")]
    [InlineData("{\"w\":", 8, "not valid JSON")]
    public void Malformed_safetensors_name_the_problem(string header, int dataBytes, string expected)
    {
        string path = Path.Combine(Path.GetTempPath(), $"osprey-bad-{Guid.NewGuid():N}.safetensors");
        try
        {
            var h = Encoding.UTF8.GetBytes(header);
            var file = new byte[8 + h.Length + dataBytes];
            BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)h.Length);
            h.CopyTo(file, 8);
            File.WriteAllBytes(path, file);
            var e = Assert.Throws<WeightFileException>(() => WeightFile.Load(path));
            Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void A_header_length_past_the_end_of_the_file_is_an_error()
    {
        string path = Path.Combine(Path.GetTempPath(), $"osprey-len-{Guid.NewGuid():N}.safetensors");
        try
        {
            var file = new byte[16];
            BinaryPrimitives.WriteUInt64LittleEndian(file, 1UL << 40);
            File.WriteAllBytes(path, file);
            var e = Assert.Throws<WeightFileException>(() => WeightFile.Load(path));
            Assert.Contains("does not fit", e.Message, StringComparison.Ordinal);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Validate_lists_missing_unexpected_and_mismatched_keys_at_once()
    {
        using var sd = WeightFile.Load(Fixture("odtk_style.pth"));
        var expected = new Dictionary<string, Shape> { ["w"] = new Shape(3, 2), ["b"] = new Shape(2) };
        var e = Assert.Throws<WeightFileException>(() => sd.Validate(expected, "odtk_style.pth"));
        Assert.Contains("missing (1): b", e.Message, StringComparison.Ordinal);
        Assert.Contains("w: file has [2, 3], model needs [3, 2]", e.Message, StringComparison.Ordinal);
    }
}
