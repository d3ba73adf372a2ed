using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Engine.Graph;

namespace Osprey.Engine.Tracing;

/// <summary>
/// A meta-device backend that computes nothing: each kernel call becomes a node of a <see cref="ComputeGraph"/>.
/// Storages get fake addresses; uploads and fills make constants (their bytes are kept); a tensor an op reads
/// becomes its storage's value, or a <see cref="OpKind.View"/> of it. Copies into slices of one fresh storage
/// (how <c>Op.Concat</c> works) are collected and become one <see cref="OpKind.Concat"/> node when the storage is
/// first read. Anything that needs data (downloads of computed values, index checks) throws <see cref="GraphException"/>.
/// </summary>
internal sealed class TracingBackend : IBackend
{
    private sealed class Buffer(long bytes)
    {
        public long Bytes { get; } = bytes;
        public Value? Value { get; set; }
        public byte[]? Data { get; set; }
        public List<(Value Source, Shape Shape, long[] Strides, long Offset)>? Pieces { get; set; }
    }

    private readonly Dictionary<nint, Buffer> _buffers = [];
    private long _nextAddress = 1 << 20;

    public TracingBackend(int index) => Device = Device.Meta(index);

    public Device Device { get; }
    public string Name => $"engine tracer ({Device})";
    public MemoryStats Memory { get; } = new();
    public ComputeGraph Graph { get; } = new();

    public nint Alloc(long bytes)
    {
        nint p = (nint)_nextAddress;
        _nextAddress += (Math.Max(bytes, 1) + 255) / 256 * 256;
        _buffers[p] = new Buffer(bytes);
        Memory.OnAlloc(bytes);
        return p;
    }

    public void Free(Storage storage)
    {
        _buffers.Remove(storage.Pointer);
        Memory.OnFree(storage.Bytes);
    }

    public void Upload(ReadOnlySpan<byte> source, Storage destination, long byteOffset)
    {
        var b = Buf(destination);
        if (b.Value is not null || b.Pieces is not null) throw new GraphException("trace: upload into a storage that already holds a computed value");
        b.Data ??= new byte[b.Bytes];
        source.CopyTo(b.Data.AsSpan(checked((int)byteOffset)));
    }

    public void Download(Storage source, long byteOffset, Span<byte> destination)
    {
        var b = Buf(source);
        byte[] data = b.Data ?? (b.Value?.Kind == ValueKind.Constant ? b.Value.Data! : null)
            ?? throw new GraphException("trace: the model reads back the data of a computed tensor (data-dependent control flow or index checks cannot be traced)");
        data.AsSpan(checked((int)byteOffset), destination.Length).CopyTo(destination);
    }

    public void Synchronize() { }

    public void Dispose() { }

    /// <summary>Registers a graph input on a fresh storage.</summary>
    public void BindInput(Tensor t, Value v) => Buf(t.Storage).Value = v;

    // ---- reading tensors ----

    private Buffer Buf(Storage s) =>
        _buffers.TryGetValue(s.Pointer, out var b) ? b : throw new GraphException($"trace: tensor storage at {s.Pointer} is not on {Device}");

    private static bool CoversStorage(Tensor t) =>
        t.Offset == 0 && t.Numel * t.ElementSize == t.Storage.Bytes && t.DenseFormat is not null;

    /// <summary>The graph value a tensor reads: its storage's value, or a view of it.</summary>
    public Value Resolve(Tensor t)
    {
        var b = Buf(t.Storage);
        if (b.Pieces is not null) FinishConcat(b);
        if (b.Value is null)
        {
            if (b.Data is null) throw new GraphException($"trace: {t} reads memory nothing has written");
            b.Value = CoversStorage(t)
                ? Graph.AddConstant($"const_{Graph.Constants.Count}", t.Shape, t.DType, t.DenseFormat!.Value, b.Data)
                : Graph.AddConstant($"const_{Graph.Constants.Count}", new Shape(checked((int)(b.Bytes / t.ElementSize))), t.DType, MemoryFormat.Contiguous, b.Data);
            b.Data = null;
        }
        var v = b.Value;
        if (v.DType != t.DType) throw new GraphException($"trace: {t} reinterprets a {v.DType.Name()} buffer");
        if (t.Shape == v.Shape && t.Offset == 0 && Layout.SameStrides(t.Shape, t.Strides, v.Strides)) return v;
        return Graph.AddView(v, t.Shape, t.Strides.ToArray(), t.Offset);
    }

    private Value[] ResolveAll(Tensor a, Tensor? b = null, Tensor? c = null, Tensor? d = null)
    {
        var list = new List<Value>(4) { Resolve(a) };
        if (b is not null) list.Add(Resolve(b));
        if (c is not null) list.Add(Resolve(c));
        if (d is not null) list.Add(Resolve(d));
        return [.. list];
    }

    // ---- writing tensors ----

    private void Produce(Tensor y, OpKind kind, NodeAttrs attrs, Value[] inputs)
    {
        var b = Buf(y.Storage);
        if (!CoversStorage(y)) throw new GraphException($"trace: {kind} writes part of a storage ({y.Shape} at offset {y.Offset}); only copies into slices (concat) are supported");
        b.Value = Graph.AddNode(kind, attrs, inputs, y.Shape, y.DType, y.DenseFormat!.Value).Output;
        b.Data = null;
        b.Pieces = null;
    }

    private void CopyOrPiece(OpKind kind, Tensor x, Tensor y)
    {
        var v = Resolve(x);
        if (CoversStorage(y)) { Produce(y, kind, NoAttrs.Instance, [v]); return; }
        var b = Buf(y.Storage);
        if (b.Value is not null || b.Data is not null) throw new GraphException("trace: copy into a slice of a storage that already holds a value (pad or in-place update) is not supported");
        (b.Pieces ??= []).Add((v, y.Shape, y.Strides.ToArray(), y.Offset));
    }

    /// <summary>Copies that tile a fresh storage along one axis, in order, become a Concat node.</summary>
    private void FinishConcat(Buffer b)
    {
        var pieces = b.Pieces!;
        b.Pieces = null;
        pieces.Sort((p, q) => p.Offset.CompareTo(q.Offset));
        var first = pieces[0];
        int rank = first.Shape.Rank;
        DType dtype = first.Source.DType;
        for (int axis = 0; axis < rank; axis++)
        {
            long start = 0;
            bool ok = true;
            foreach (var p in pieces)
            {
                ok &= p.Shape.Rank == rank && p.Strides.AsSpan().SequenceEqual(first.Strides) && p.Offset == start * first.Strides[axis];
                for (int d = 0; ok && d < rank; d++) ok = d == axis || p.Shape[d] == first.Shape[d];
                if (!ok) break;
                start += p.Shape[axis];
            }
            if (!ok) continue;
            var shape = first.Shape.With(axis, checked((int)start));
            MemoryFormat? format = Layout.SameStrides(shape, first.Strides, shape.ContiguousStrides()) ? MemoryFormat.Contiguous
                : rank == 4 && Layout.SameStrides(shape, first.Strides, shape.ChannelsLastStrides()) ? MemoryFormat.ChannelsLast : null;
            if (format is null || shape.Numel * dtype.SizeOf() != b.Bytes) continue;
            b.Value = Graph.AddNode(OpKind.Concat, new AxisAttrs(axis), pieces.Select(p => p.Source), shape, dtype, format.Value).Output;
            return;
        }
        throw new GraphException($"trace: {pieces.Count} copies into slices of one storage do not form a concatenation");
    }

    // ---- kernels ----

    public void Copy(Tensor source, Tensor destination) => CopyOrPiece(OpKind.Copy, source, destination);

    public void Cast(Tensor x, Tensor y) => CopyOrPiece(OpKind.Cast, x, y);

    public void Fill(Tensor destination, double value)
    {
        var b = Buf(destination.Storage);
        if (!CoversStorage(destination)) throw new GraphException("trace: fill of part of a storage (pad) is not supported");
        using var host = Tensor.Full(new Shape(checked((int)destination.Numel)), value, destination.DType);
        b.Data = new byte[b.Bytes];
        host.Backend.Download(host.Storage, 0, b.Data);
        b.Value = null;
    }

    public void Unary(UnaryOp op, Tensor x, Tensor y) => Produce(y, OpKind.Unary, new UnaryAttrs(op), ResolveAll(x));

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y) => Produce(y, OpKind.Binary, new BinaryAttrs(op), ResolveAll(a, b));

    public void Where(Tensor condition, Tensor a, Tensor b, Tensor y) => Produce(y, OpKind.Where, NoAttrs.Instance, ResolveAll(condition, a, b));

    public void Reduce(ReduceOp op, Tensor x, int[] axes, Tensor y) => Produce(y, OpKind.Reduce, new ReduceAttrs(op, (int[])axes.Clone()), ResolveAll(x));

    public void ArgMax(Tensor x, int axis, Tensor y) => Produce(y, OpKind.ArgMax, new AxisAttrs(axis), ResolveAll(x));

    public void Softmax(Tensor x, int axis, bool log, Tensor y) => Produce(y, OpKind.Softmax, new SoftmaxAttrs(axis, log), ResolveAll(x));

    public void TopK(Tensor x, int k, int axis, bool largest, Tensor values, Tensor indices) => throw Unsupported("topk");

    public void Gather(Tensor x, int axis, Tensor index, Tensor y) => throw Unsupported("gather");

    public void IndexSelect(Tensor x, int axis, Tensor index, Tensor y) => throw Unsupported("index_select");

    public void MatMul(Tensor a, Tensor b, bool transposeA, bool transposeB, Epilogue epilogue, Tensor y) =>
        Produce(y, OpKind.MatMul, new MatMulAttrs(transposeA, transposeB, epilogue.Activation, epilogue.Bias is not null, epilogue.Residual is not null),
            ResolveAll(a, b, epilogue.Bias, epilogue.Residual));

    public void Conv2d(Tensor x, Tensor weight, Conv2dParams p, Epilogue epilogue, Tensor y) =>
        Produce(y, OpKind.Conv2d, new ConvAttrs(p, epilogue.Activation, epilogue.Bias is not null, epilogue.Residual is not null),
            ResolveAll(x, weight, epilogue.Bias, epilogue.Residual));

    public void Pool2d(PoolKind kind, Tensor x, Pool2dParams p, Tensor y) => Produce(y, OpKind.Pool2d, new PoolAttrs(kind, p), ResolveAll(x));

    public void Resize(ResizeMode mode, Tensor x, Tensor y) => Produce(y, OpKind.Resize, new ResizeAttrs(mode), ResolveAll(x));

    // Engines are inference graphs: backward kernels (autograd) are never traced.
    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor gy, Tensor gx) => throw Backward("unary");

    public void Conv2dBackwardData(Tensor gy, Tensor weight, Conv2dParams p, Tensor gx) => throw Backward("conv2d_backward_data");

    public void Conv2dBackwardFilter(Tensor x, Tensor gy, Conv2dParams p, Tensor gw) => throw Backward("conv2d_backward_filter");

    public void Pool2dBackward(PoolKind kind, Tensor x, Tensor gy, Pool2dParams p, Tensor gx) => throw Backward("pool2d");

    public void ResizeBackward(ResizeMode mode, Tensor gy, Tensor gx) => throw Backward("resize");

    public void ScatterAdd(Tensor gy, int axis, Tensor index, Tensor gx) => throw Backward("scatter_add");

    private static GraphException Backward(string op) => new($"trace: {op} backward cannot be traced (engines are inference graphs; record gradients outside a trace)");

    private static GraphException Unsupported(string op) => new($"trace: {op} is not supported in engine graphs yet (post-processing runs outside the network graph)");
}
