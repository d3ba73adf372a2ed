using System.Buffers.Binary;
using Osprey.Engine;
using Osprey.Engine.Graph;
using Osprey.Engine.Serialization;

namespace Osprey.Tests.Engine;

public class EngineFileTests
{
    private static readonly Dictionary<string, string> s_options = new() { ["precision"] = "float32", ["batch"] = "2" };

    private static byte[] Build()
    {
        var g = SmallNet.Trace();
        EngineBuilder.Optimize(g);
        return EngineWriter.Write(g, EngineTarget.Cpu, s_options);
    }

    [Fact]
    public void Round_trip_is_byte_identical_and_runs_the_same()
    {
        var g = SmallNet.Trace();
        EngineBuilder.Optimize(g);
        var bytes = EngineWriter.Write(g, EngineTarget.Cpu, s_options);
        var (header, g2) = EngineReader.Read(bytes, EngineTarget.Cpu);
        Assert.Equal(EngineTarget.Cpu, header.Target);
        Assert.Equal("2", header.BuildOptions["batch"]);
        Assert.Equal(GraphDump.Format(g, true), GraphDump.Format(g2, true));
        Assert.Equal(bytes, EngineWriter.Write(g2, EngineTarget.Cpu, s_options));
        var (h1, f1) = PassTests.Run(g);
        var (h2, f2) = PassTests.Run(g2);
        Assert.Equal(h1, h2);
        Assert.Equal(f1, f2);
    }

    [Fact]
    public void Wrong_magic_version_target_and_checksum_are_named()
    {
        var bytes = Build();
        var bad = (byte[])bytes.Clone();
        bad[0] = (byte)'X';
        Assert.Contains("not an Osprey engine", Assert.Throws<EngineFormatException>(() => EngineReader.Read(bad, EngineTarget.Cpu)).Message, StringComparison.Ordinal);
        bad = (byte[])bytes.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(bad.AsSpan(8), 99);
        Assert.Contains("version 99", Assert.Throws<EngineFormatException>(() => EngineReader.Read(bad, EngineTarget.Cpu)).Message, StringComparison.Ordinal);
        var gpu = EngineTarget.Cpu with { Architecture = "sm_90" };
        Assert.Contains("built for cpu, this device is sm_90", Assert.Throws<EngineFormatException>(() => EngineReader.Read(bytes, gpu)).Message, StringComparison.Ordinal);
        Assert.Contains("Osprey 0.0-other", Assert.Throws<EngineFormatException>(() => EngineReader.Read(bytes, EngineTarget.Cpu with { OspreyVersion = "0.0-other" })).Message, StringComparison.Ordinal);
        Assert.Contains("kernels", Assert.Throws<EngineFormatException>(() => EngineReader.Read(bytes, EngineTarget.Cpu with { KernelHash = "abc" })).Message, StringComparison.Ordinal);
        bad = (byte[])bytes.Clone();
        bad[bytes.Length / 2] ^= 0x40;
        Assert.Contains("checksum", Assert.Throws<EngineFormatException>(() => EngineReader.Read(bad, EngineTarget.Cpu)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_truncation_is_a_clear_error()
    {
        var bytes = Build();
        for (int len = 0; len < bytes.Length; len += Math.Max(1, len / 50))
            Assert.Throws<EngineFormatException>(() => EngineReader.Read(bytes.AsSpan(0, len), EngineTarget.Cpu));
    }

    /// <summary>Mutations with the checksum recomputed, so the parser itself meets lying lengths, ids and enums.</summary>
    [Fact]
    public void Mutated_files_with_valid_checksums_never_crash_or_over_read()
    {
        var bytes = Build();
        var rng = new Random(77);
        int structural = (int)Math.Min(bytes.Length - 8, 6000);   // header and graph tables come before the weights blob
        for (int trial = 0; trial < 3000; trial++)
        {
            var bad = (byte[])bytes.Clone();
            int pos = 12 + rng.Next(structural - 12);
            bad[pos] = rng.Next(3) switch { 0 => 0xFF, 1 => 0, _ => (byte)rng.Next(256) };
            if (rng.Next(4) == 0) bad[pos + 1 < bad.Length - 8 ? pos + 1 : pos] = 0x7F;
            BinaryPrimitives.WriteUInt64LittleEndian(bad.AsSpan(bad.Length - 8), EngineReader.Fnv1a(bad.AsSpan(0, bad.Length - 8)));
            try { EngineReader.Read(bad, null); }
            catch (EngineFormatException) { }
        }
    }
}
