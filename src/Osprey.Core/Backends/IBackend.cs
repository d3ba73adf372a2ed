using Osprey.Core.Tensors;

namespace Osprey.Core.Backends;

/// <summary>
/// One device's memory and kernels. Model code never talks to a backend directly: it calls
/// <see cref="Ops.Op"/>, which validates arguments, allocates outputs on the inputs' device and
/// dispatches here. A backend may assume what <c>Op</c> guarantees, stated per method:
/// all tensors live on this backend, shapes and dtypes already agree, outputs are freshly
/// allocated and contiguous (in the memory format named) unless the method says otherwise.
/// Work may be queued asynchronously; <see cref="Synchronize"/> waits for it.
/// </summary>
public interface IBackend : IDisposable
{
    Device Device { get; }

    /// <summary>Human-readable description (CPU model, GPU name).</summary>
    string Name { get; }

    MemoryStats Memory { get; }

    // ---- memory ----

    /// <summary>Allocates <paramref name="bytes"/> (may be 0) and returns the address. Throws <see cref="OutOfDeviceMemoryException"/>.</summary>
    nint Alloc(long bytes);

    /// <summary>Returns a storage's memory; called once, when its last reference goes.</summary>
    void Free(Storage storage);

    /// <summary>Copies host bytes into the storage at a byte offset.</summary>
    void Upload(ReadOnlySpan<byte> source, Storage destination, long byteOffset);

    /// <summary>Copies storage bytes from a byte offset to the host; waits for queued work first.</summary>
    void Download(Storage source, long byteOffset, Span<byte> destination);

    /// <summary>Waits until all queued work on this backend is done.</summary>
    void Synchronize();

    // ---- data movement ----

    /// <summary>dst[i] = src[i] for two tensors of one shape and dtype with any strides (dst may be a view, e.g. a slice of a concat output).</summary>
    void Copy(Tensor source, Tensor destination);

    /// <summary>Sets every element of a (possibly strided) tensor to a value, converted to its dtype.</summary>
    void Fill(Tensor destination, double value);

    /// <summary>Converts element types: y = (dtype of y) x. Same shape; x and y any strides. Floats to float16/bfloat16 round to nearest even; floats to ints truncate toward zero, as PyTorch.</summary>
    void Cast(Tensor x, Tensor y);

    // ---- element-wise ----

    /// <summary>y = op(x). x any strides; y contiguous, same shape and dtype (floating).</summary>
    void Unary(UnaryOp op, Tensor x, Tensor y);

    /// <summary>
    /// y = a op b. a and b are already expanded to y's shape (broadcast dimensions have stride 0) and share a dtype; y has that dtype, or bool for comparisons.
    /// Integer dtypes keep their dtype: div truncates toward zero (torch.div(rounding_mode='trunc'), not PyTorch's true-division `/`),
    /// arithmetic wraps, a zero divisor or a negative integer exponent throws <see cref="OpArgumentException"/>. Bool supports only eq and ne.
    /// </summary>
    void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y);

    /// <summary>y = cond ? a : b. All three expanded to y's shape; cond is bool.</summary>
    void Where(Tensor condition, Tensor a, Tensor b, Tensor y);

    // ---- reductions ----

    /// <summary>Reduces x over the given sorted, distinct axes; y has x's rank with those axes of size 1.</summary>
    void Reduce(ReduceOp op, Tensor x, int[] axes, Tensor y);

    /// <summary>Index of the largest value along an axis (first one on ties); y is int64 with that axis of size 1.</summary>
    void ArgMax(Tensor x, int axis, Tensor y);

    /// <summary>(log-)softmax along an axis; x contiguous; y same shape.</summary>
    void Softmax(Tensor x, int axis, bool log, Tensor y);

    /// <summary>The k largest (or smallest) values along an axis, sorted, ties broken by lower index first; indices int64. x contiguous.</summary>
    void TopK(Tensor x, int k, int axis, bool largest, Tensor values, Tensor indices);

    // ---- indexing ----

    /// <summary>torch.gather: y[..., i, ...] = x[..., index[..., i, ...], ...] along axis. index int64 or int32, same rank as x. Indices already checked for range.</summary>
    void Gather(Tensor x, int axis, Tensor index, Tensor y);

    /// <summary>torch.index_select: picks whole slices of x along an axis by a 1-D int64 or int32 index. Indices already checked for range.</summary>
    void IndexSelect(Tensor x, int axis, Tensor index, Tensor y);

    // ---- linear algebra and convolution ----

    /// <summary>
    /// y = act(op(a) @ op(b) + bias + residual) over a batch: a is [B, M, K] (or [B, K, M] when transposeA),
    /// b is [B, K, N] (or [B, N, K] when transposeB), y is [B, M, N]; B may be 1 on a or b (broadcast).
    /// Inputs contiguous; bias [N]; residual [B, M, N].
    /// </summary>
    void MatMul(Tensor a, Tensor b, bool transposeA, bool transposeB, Epilogue epilogue, Tensor y);

    /// <summary>
    /// y = act(conv2d(x, w) + bias + residual). x is [N, C, H, W] in either memory format, w is
    /// [O, C/groups, KH, KW] contiguous (or channels_last when x is), y [N, O, OH, OW] in x's memory format.
    /// </summary>
    void Conv2d(Tensor x, Tensor weight, Conv2dParams p, Epilogue epilogue, Tensor y);

    /// <summary>Max or average pooling of [N, C, H, W] in either memory format; y in x's format.</summary>
    void Pool2d(PoolKind kind, Tensor x, Pool2dParams p, Tensor y);

    /// <summary>Resizes [N, C, H, W] to y's H and W (align_corners=False, PyTorch's scale = in/out); y in x's format.</summary>
    void Resize(ResizeMode mode, Tensor x, Tensor y);

    // ---- backward (training; see docs/autograd.md) ----
    // float32 only. Every output gradient is freshly allocated and dense; the backend overwrites it
    // (it need not be zeroed) unless the method says otherwise.

    /// <summary>
    /// gx = gy * op'(x): the derivative of a unary function. x (the forward input), y (the forward output),
    /// gy and gx are contiguous float32 of one shape. Relu, Relu6, Sigmoid, Tanh, Exp and Sqrt read only y
    /// (so a fused activation's output suffices); the others read only x; Identity and Neg read neither.
    /// </summary>
    void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor gy, Tensor gx);

    /// <summary>
    /// The input gradient of conv2d (cudnnConvolutionBackwardData): gx [N, C, H, W] = the transposed convolution of
    /// gy [N, O, OH, OW] with weight [O, C/groups, KH, KW]. gy and weight are dense in either memory format; gx is dense in gy's.
    /// </summary>
    void Conv2dBackwardData(Tensor gy, Tensor weight, Conv2dParams p, Tensor gx);

    /// <summary>
    /// The weight gradient of conv2d (cudnnConvolutionBackwardFilter): gw [O, C/groups, KH, KW] (contiguous) = the sum over
    /// images and output positions of gy times the input window. x and gy are dense in either memory format (not necessarily the same).
    /// </summary>
    void Conv2dBackwardFilter(Tensor x, Tensor gy, Conv2dParams p, Tensor gw);

    /// <summary>
    /// The input gradient of <see cref="Pool2d"/>: max sends each gy to the first maximum of its window (recomputed from x),
    /// average spreads gy / divisor over the window. x and gy dense in either format; gx dense in x's format.
    /// </summary>
    void Pool2dBackward(PoolKind kind, Tensor x, Tensor gy, Pool2dParams p, Tensor gx);

    /// <summary>The input gradient of <see cref="Resize"/> (its adjoint): gy [N, C, OH, OW] dense in either format; gx [N, C, H, W] dense in gy's format.</summary>
    void ResizeBackward(ResizeMode mode, Tensor gy, Tensor gx);

    /// <summary>
    /// The input gradient of <see cref="Gather"/>: gx[..., index[p], ...] += gy[p] along axis for every position p of index.
    /// gx is contiguous and already holds what to add to (zeros from Op); gy and index (int64 or int32) contiguous, one shape, x's rank.
    /// </summary>
    void ScatterAdd(Tensor gy, int axis, Tensor index, Tensor gx);
}
