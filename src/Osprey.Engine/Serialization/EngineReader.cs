using System.Buffers.Binary;
using System.Text;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Engine.Graph;

namespace Osprey.Engine.Serialization;

/// <summary>
/// Reads engine files written by <see cref="EngineWriter"/>. Every count, length, id and enum read from the file is
/// checked against the bytes left and the values defined so far; any problem (wrong magic, newer format, other
/// target, damaged or truncated file, lying lengths) is an <see cref="EngineFormatException"/> naming the file and the
/// byte offset, never an over-read or a native fault. The graph is validated after reading.
/// </summary>
public static class EngineReader
{
    private const int MaxRank = 8, MaxString = 1 << 20;

    public static (EngineHeader Header, ComputeGraph Graph) ReadFile(string path, EngineTarget? expected) =>
        Read(File.ReadAllBytes(path), expected, path);

    /// <summary>Reads only the header (magic, version, target, options) after checking the checksum.</summary>
    public static EngineHeader ReadHeader(ReadOnlySpan<byte> file, string source = "engine")
    {
        var r = Open(file, source);
        return Header(ref r);
    }

    /// <param name="expected">The target this process runs on; null skips the target check (for inspection tools).</param>
    public static (EngineHeader Header, ComputeGraph Graph) Read(ReadOnlySpan<byte> file, EngineTarget? expected, string source = "engine")
    {
        var r = Open(file, source);
        var header = Header(ref r);
        if (expected is not null) CheckTarget(header.Target, expected, source);
        var graph = new ComputeGraph();
        foreach (var (k, v) in Pairs(ref r)) graph.Metadata[k] = v;
        int count = r.Count(6, "value count");
        var recs = new (ValueKind Kind, string Name, DType DType, MemoryFormat Format, Shape Shape, long BlobOffset, long Bytes)[count];
        for (int i = 0; i < count; i++)
        {
            var kind = r.Enum<ValueKind>("value kind");
            string name = r.String();
            var dtype = r.Enum<DType>("dtype");
            var format = r.Enum<MemoryFormat>("memory format");
            int rank = r.Byte();
            if (rank > MaxRank) throw r.Fail($"value {i} has rank {rank} (at most {MaxRank})");
            var dims = new int[rank];
            for (int d = 0; d < rank; d++)
                if ((dims[d] = r.Int32()) < 0) throw r.Fail($"value {i} has negative dimension {dims[d]}");
            long bo = 0, bytes = 0;
            var shape = new Shape(dims);
            if (kind == ValueKind.Constant)
            {
                bo = r.Int64();
                bytes = r.Int64();
                long need;
                try { need = checked(shape.Numel * dtype.SizeOf()); }
                catch (OverflowException) { throw r.Fail($"constant {i} shape {shape} is too large"); }
                if (bo < 0 || bytes != need) throw r.Fail($"constant {i} ({name}) claims {bytes} bytes at {bo}, {shape} {dtype.Name()} needs {need}");
            }
            recs[i] = (kind, name, dtype, format, shape, bo, bytes);
        }
        var values = new Value?[count];
        int nodes = r.Count(18, "node count");
        var nodeRecs = new (OpKind Kind, string Name, int[] Inputs, int Output, NodeAttrs Attrs, string? Algorithm)[nodes];
        for (int i = 0; i < nodes; i++)
        {
            var kind = r.Enum<OpKind>("op kind");
            string name = r.String();
            var ins = new int[r.Count(4, "input count")];
            for (int k = 0; k < ins.Length; k++) ins[k] = r.Id(count);
            int output = r.Id(count);
            var attrs = Attrs(ref r, kind);
            string algorithm = r.String();
            if (algorithm.Length > Tuning.ConvAlgorithms.MaxTextLength)
                throw r.Fail($"node {name}: algorithm text of {algorithm.Length} characters (at most {Tuning.ConvAlgorithms.MaxTextLength})");
            if (algorithm.Length > 0 && kind != OpKind.Conv2d) throw r.Fail($"node {name} ({kind}) stores an algorithm; only convolutions do");
            nodeRecs[i] = (kind, name, ins, output, attrs, algorithm.Length == 0 ? null : algorithm);
        }
        var inputIds = new int[r.Count(4, "graph input count")];
        for (int k = 0; k < inputIds.Length; k++) inputIds[k] = r.Id(count);
        var outputIds = new int[r.Count(4, "graph output count")];
        for (int k = 0; k < outputIds.Length; k++) outputIds[k] = r.Id(count);
        long blobLength = r.Int64();
        if (blobLength < 0 || blobLength != r.Remaining) throw r.Fail($"weights blob claims {blobLength} bytes, {r.Remaining} remain");
        var blob = r.Bytes((int)Math.Min(blobLength, int.MaxValue));

        try
        {
            Build(ref r, graph, recs, values, nodeRecs, inputIds, outputIds, blob);
            ShapeInference.Validate(graph);
        }
        catch (Exception e) when (e is GraphException or ArgumentException or OverflowException or InvalidOperationException)
        {
            throw new EngineFormatException($"{source}: invalid graph: {e.Message}", e);
        }
        return (header, graph);
    }

    private static void Build(ref SpanReader r, ComputeGraph graph,
        (ValueKind Kind, string Name, DType DType, MemoryFormat Format, Shape Shape, long BlobOffset, long Bytes)[] recs, Value?[] values,
        (OpKind Kind, string Name, int[] Inputs, int Output, NodeAttrs Attrs, string? Algorithm)[] nodeRecs, int[] inputIds, int[] outputIds, ReadOnlySpan<byte> blob)
    {
        int count = recs.Length;
        for (int i = 0; i < count; i++)
        {
            var v = recs[i];
            if (v.Kind == ValueKind.Input)
            {
                if (Array.IndexOf(inputIds, i) < 0) throw r.Fail($"value {i} is an input but not listed as one");
                values[i] = graph.AddInput(v.Name, v.Shape, v.DType, v.Format);
            }
            else if (v.Kind == ValueKind.Constant)
            {
                if (v.BlobOffset > blob.Length - v.Bytes) throw r.Fail($"constant {i} ({v.Name}) at {v.BlobOffset}+{v.Bytes} lies outside the {blob.Length}-byte weights blob");
                values[i] = graph.AddConstant(v.Name, v.Shape, v.DType, v.Format, blob.Slice((int)v.BlobOffset, (int)v.Bytes).ToArray());
            }
        }
        foreach (var n in nodeRecs)
        {
            var inputs = new Value[n.Inputs.Length];
            for (int k = 0; k < inputs.Length; k++)
                inputs[k] = values[n.Inputs[k]] ?? throw r.Fail($"node {n.Name} reads value {n.Inputs[k]} before it is defined");
            var o = recs[n.Output];
            if (o.Kind != ValueKind.Activation || values[n.Output] is not null) throw r.Fail($"node {n.Name} writes value {n.Output}, which is not a fresh activation");
            if (n.Kind == OpKind.View && inputs.Length == 1 && inputs[0].IsAlias) throw r.Fail($"view {n.Name} of a view");
            var node = graph.AddNode(n.Kind, n.Attrs, inputs, o.Shape, o.DType, o.Format, n.Name);
            node.Algorithm = n.Algorithm;
            values[n.Output] = node.Output;
            values[n.Output]!.Name = o.Name;
        }
        foreach (int id in outputIds) graph.Outputs.Add(values[id] ?? throw r.Fail($"output value {id} is never computed"));
    }

    private static SpanReader Open(ReadOnlySpan<byte> file, string source)
    {
        int min = EngineWriter.Magic.Length + 4 + 8;
        if (file.Length < min) throw new EngineFormatException($"{source}: {file.Length} bytes is too short for an Osprey engine (truncated?)");
        if (!file[..EngineWriter.Magic.Length].SequenceEqual(EngineWriter.Magic))
            throw new EngineFormatException($"{source}: not an Osprey engine (magic '{Encoding.ASCII.GetString(file[..8])}', expected 'OSPREYEN')");
        int version = BinaryPrimitives.ReadInt32LittleEndian(file[8..]);
        if (version != EngineWriter.FormatVersion)
            throw new EngineFormatException($"{source}: engine format version {version}; this Osprey reads version {EngineWriter.FormatVersion}: rebuild it with osprey export");
        var body = file[..^8];
        ulong want = BinaryPrimitives.ReadUInt64LittleEndian(file[^8..]);
        if (Fnv1a(body) != want) throw new EngineFormatException($"{source}: checksum mismatch: the file is damaged or truncated");
        return new SpanReader(body, 12, source);
    }

    private static EngineHeader Header(ref SpanReader r)
    {
        var target = new EngineTarget(r.String(), r.String(), r.String());
        var opts = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in Pairs(ref r)) opts[k] = v;
        return new EngineHeader(EngineWriter.FormatVersion, target, opts);
    }

    private static void CheckTarget(EngineTarget got, EngineTarget want, string source)
    {
        if (got.Architecture != want.Architecture)
            throw new EngineFormatException($"{source}: engine built for {got.Architecture}, this device is {want.Architecture}: rebuild it with osprey export on this device");
        if (got.OspreyVersion != want.OspreyVersion)
            throw new EngineFormatException($"{source}: engine built by Osprey {got.OspreyVersion}, this is Osprey {want.OspreyVersion}: rebuild it");
        if (got.KernelHash != want.KernelHash)
            throw new EngineFormatException($"{source}: engine built with kernels {got.KernelHash}, this build has {want.KernelHash}: rebuild it");
    }

    private static List<(string, string)> Pairs(ref SpanReader r)
    {
        int n = r.Count(8, "pair count");
        var list = new List<(string, string)>(n);
        for (int i = 0; i < n; i++) list.Add((r.String(), r.String()));
        return list;
    }

    private static UnaryOp Unary(ref SpanReader r) => new(r.Enum<UnaryKind>("activation"), r.Single(), r.Single());

    private static NodeAttrs Attrs(ref SpanReader r, OpKind kind)
    {
        switch (kind)
        {
            case OpKind.Copy or OpKind.Cast or OpKind.Where: return NoAttrs.Instance;
            case OpKind.Conv2d:
            {
                var g = new Conv2dParams(r.Int32(), r.Int32(), r.Int32(), r.Int32(), r.Int32(), r.Int32(), r.Int32());
                if (g.StrideH < 1 || g.StrideW < 1 || g.DilationH < 1 || g.DilationW < 1 || g.PadH < 0 || g.PadW < 0 || g.Groups < 1)
                    throw r.Fail($"invalid convolution geometry {g}");
                return new ConvAttrs(g, Unary(ref r), r.Bool(), r.Bool());
            }
            case OpKind.MatMul: return new MatMulAttrs(r.Bool(), r.Bool(), Unary(ref r), r.Bool(), r.Bool());
            case OpKind.Unary: return new UnaryAttrs(Unary(ref r));
            case OpKind.Binary: return new BinaryAttrs(r.Enum<BinaryOp>("binary op"));
            case OpKind.Reduce:
            {
                var op = r.Enum<ReduceOp>("reduce op");
                var axes = new int[r.Byte()];
                for (int i = 0; i < axes.Length; i++) axes[i] = r.Int32();
                return new ReduceAttrs(op, axes);
            }
            case OpKind.ArgMax or OpKind.Concat: return new AxisAttrs(r.Int32());
            case OpKind.Softmax: return new SoftmaxAttrs(r.Int32(), r.Bool());
            case OpKind.Pool2d:
            {
                var k = r.Enum<PoolKind>("pool kind");
                var p = new Pool2dParams(r.Int32(), r.Int32(), r.Int32(), r.Int32(), r.Int32(), r.Int32(), r.Bool(), r.Bool());
                if (p.KernelH < 1 || p.KernelW < 1 || p.StrideH < 1 || p.StrideW < 1 || p.PadH < 0 || p.PadW < 0)
                    throw r.Fail($"invalid pooling geometry {p}");
                return new PoolAttrs(k, p);
            }
            case OpKind.Resize: return new ResizeAttrs(r.Enum<ResizeMode>("resize mode"));
            case OpKind.View:
            {
                int rank = r.Byte();
                if (rank > MaxRank) throw r.Fail($"view rank {rank}");
                var s = new long[rank];
                for (int i = 0; i < rank; i++) s[i] = r.Int64();
                return new ViewAttrs(s, r.Int64());
            }
            default: throw r.Fail($"op kind {kind} has no attribute reader");
        }
    }

    /// <summary>FNV-1a 64 over bytes (8 at a time is not needed: engines are read once).</summary>
    public static ulong Fnv1a(ReadOnlySpan<byte> data)
    {
        ulong h = 14695981039346656037UL;
        foreach (byte b in data) { h ^= b; h *= 1099511628211UL; }
        return h;
    }

    /// <summary>A bounds-checked little-endian cursor over the file body.</summary>
    private ref struct SpanReader(ReadOnlySpan<byte> data, int position, string source)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _pos = position;

        public readonly long Remaining => _data.Length - _pos;

        public readonly EngineFormatException Fail(string problem) => new($"{source}: at byte {_pos}: {problem}");

        private ReadOnlySpan<byte> Take(int n)
        {
            if (n < 0 || n > _data.Length - _pos) throw Fail($"needs {n} more bytes, {_data.Length - _pos} remain (truncated or a lying length)");
            var s = _data.Slice(_pos, n);
            _pos += n;
            return s;
        }

        public ReadOnlySpan<byte> Bytes(int n) => Take(n);
        public byte Byte() => Take(1)[0];
        public bool Bool() => Byte() switch { 0 => false, 1 => true, var b => throw Fail($"boolean byte {b}") };
        public int Int32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));
        public long Int64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));
        public float Single() => BinaryPrimitives.ReadSingleLittleEndian(Take(4));

        public string String()
        {
            int n = Int32();
            if (n < 0 || n > MaxString) throw Fail($"string length {n}");
            return Encoding.UTF8.GetString(Take(n));
        }

        /// <summary>A count whose records take at least minBytes each: must fit in what is left.</summary>
        public int Count(int minBytes, string what)
        {
            int n = Int32();
            if (n < 0 || (long)n * minBytes > Remaining) throw Fail($"{what} {n} does not fit in the {Remaining} bytes left");
            return n;
        }

        public int Id(int count)
        {
            int id = Int32();
            if (id < 0 || id >= count) throw Fail($"value id {id} outside [0, {count})");
            return id;
        }

        public T Enum<T>(string what) where T : struct, System.Enum
        {
            byte b = Byte();
            var v = (T)(object)(int)b;
            if (!System.Enum.IsDefined(v)) throw Fail($"unknown {what} {b}");
            return v;
        }
    }
}
