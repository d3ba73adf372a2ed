using System.Runtime.CompilerServices;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda.Blas;
using Osprey.Cuda.Memory;
using Osprey.Cuda.Native;

[assembly: InternalsVisibleTo("Osprey.Bench")]

namespace Osprey.Cuda;

// Matrix products through cuBLASLt: bias and ReLU fused as Lt epilogues, a residual accumulated through
// C with beta = 1, every other activation (including torch's exact erf GELU: Lt's GELU epilogue is the
// tanh approximation) applied afterwards by this backend's element-wise kernel, in place.
// fp16/bf16 accumulate in fp32. fp32 is exact fp32 (CUBLAS_COMPUTE_32F) by default; TF32 tensor cores
// only when CudaMathOptions.AllowTf32 is set.
public sealed partial class CudaBackend
{
    /// <summary>Opens device <paramref name="index"/> with the given math options (TF32 for fp32 products).</summary>
    public CudaBackend(int index, CudaMathOptions options) : this(index)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
    }

    /// <summary>Registers the CUDA provider with math options applied to every device it opens.</summary>
    public static void Register(CudaMathOptions options) =>
        BackendRegistry.RegisterProvider(DeviceType.Cuda, i => new CudaBackend(i, options));

    /// <summary>Math options of this device's matrix products and convolutions (default: exact fp32).</summary>
    public CudaMathOptions Options { get; } = CudaMathOptions.Default;

    /// <summary>Workspace the cuBLASLt heuristic may ask for (as PyTorch on Hopper).</summary>
    private const ulong LtMaxWorkspace = 32UL << 20;

    private readonly Lock _blasLock = new();
    private readonly Dictionary<LtProblem, LtPlan> _ltPlans = [];
    private CuBlasLt? _lt;
    private nint _ltHandle;

    public void MatMul(Tensor a, Tensor b, bool transposeA, bool transposeB, Epilogue epilogue, Tensor y)
    {
        int batch = y.Shape[0], m = y.Shape[1], n = y.Shape[2];
        int k = transposeA ? a.Shape[1] : a.Shape[2];
        if (y.Numel == 0) return;
        MakeCurrent();
        if (k == 0)
        {
            ApplyEpilogueOnly(y, epilogue);
            return;
        }
        using var bias = epilogue.Bias is { } eb ? Op.Contiguous(eb) : null;
        var residual = epilogue.Residual; // Op gives it as [batch, m, n] contiguous
        var act = epilogue.Activation;
        bool ltRelu = act.Kind == UnaryKind.Relu;
        var lt = LtEpilogue(bias is not null, ltRelu);

        bool aBatched = a.Shape[0] > 1, bBatched = b.Shape[0] > 1;
        int rows = m, count = batch;
        long strideA = aBatched ? (long)m * k : 0, strideB = bBatched ? (long)k * n : 0;
        if (batch > 1 && !bBatched && !transposeA)
        {
            // [B, M, K] @ [K, N]: one product of B*M rows, as torch does
            rows = checked(batch * m);
            count = 1;
            strideA = 0;
        }
        int es = y.ElementSize;
        // column-major view of the row-major problem: yᵀ (n x rows) = op(b)ᵀ-stored · op(a)ᵀ-stored
        var problem = new LtProblem(
            y.DType, y.DType == DType.Float32 && Options.AllowTf32,
            Rows: n, Cols: rows, Inner: k, Batch: count,
            TransA: transposeB, TransB: transposeA,
            StrideA: strideB, StrideB: strideA, StrideD: (long)rows * n,
            lt, AccumulateC: residual is not null,
            AlignA: Alignment(b.DataPointer, strideB * es), AlignB: Alignment(a.DataPointer, strideA * es),
            AlignC: Alignment(residual?.DataPointer ?? y.DataPointer, (long)rows * n * es),
            AlignD: Alignment(y.DataPointer, (long)rows * n * es),
            AlignBias: bias is null ? 0 : Alignment(bias.DataPointer, 0));

        lock (_blasLock)
        {
            var api = BlasApi();
            if (!_ltPlans.TryGetValue(problem, out var plan))
            {
                plan = new LtPlan(api, _ltHandle, problem, bias?.DataPointer ?? 0, (nuint)LtMaxWorkspace);
                _ltPlans.Add(problem, plan);
            }
            using var ws = Workspace((long)plan.WorkspaceBytes);
            plan.Run(_ltHandle, b.DataPointer, a.DataPointer,
                residual?.DataPointer ?? y.DataPointer, y.DataPointer,
                bias?.DataPointer ?? 0, residual is null ? 0f : 1f,
                (nint)(ws?.Pointer ?? 0), plan.WorkspaceBytes, Stream.Handle);
        }
        if (!ltRelu && act.Kind != UnaryKind.Identity) Unary(act, y, y);
    }

    private static CublasLtEpilogue LtEpilogue(bool bias, bool relu) => (bias, relu) switch
    {
        (true, true) => CublasLtEpilogue.ReluBias,
        (true, false) => CublasLtEpilogue.Bias,
        (false, true) => CublasLtEpilogue.Relu,
        _ => CublasLtEpilogue.Default,
    };

    /// <summary>Largest power of two (up to 256) dividing the address and, for batches, the batch stride in bytes.</summary>
    private static int Alignment(nint pointer, long strideBytes)
    {
        long v = pointer | 256;
        if (strideBytes != 0) v |= strideBytes;
        return (int)(v & -v);
    }

    private CuBlasLt BlasApi()
    {
        if (_lt is not null) return _lt;
        var api = new CuBlasLt(NativeLibraries.Load(NativeLibraries.CublasLt));
        MakeCurrent();
        nint h;
        unsafe { api.Check(api.Create(&h)); }
        _ltHandle = h;
        _lt = api;
        return api;
    }

    /// <summary>Scratch memory from this backend's caching allocator, returned when disposed (stream-ordered reuse); null for 0 bytes.</summary>
    private DeviceBuffer? Workspace(long bytes) => bytes <= 0 ? null : AllocateWorkspace(bytes);

    /// <summary>Destroys the cuBLASLt/cuDNN handles and cached plans (called from Dispose, before the allocator and stream go).</summary>
    private void DisposeLibraries()
    {
        DisposeBlas();
        DisposeDnn();
    }

    /// <summary>y = act(bias + residual) for products with an empty reduction (K = 0 or C = 0).</summary>
    private void ApplyEpilogueOnly(Tensor y, Epilogue e)
    {
        using var flat = DenseFlat(y);
        if (e.Residual is { } r)
        {
            using var rd = Op.Contiguous(r, y.IsContiguous() ? MemoryFormat.Contiguous : MemoryFormat.ChannelsLast);
            using var rf = DenseFlat(rd);
            Copy(rf, flat);
        }
        else Fill(flat, 0);
        if (e.Bias is { } b)
        {
            // bias runs along the channel (conv) or last (matmul) dimension, which is innermost in y's dense order
            bool channelsLast = y.Rank == 4 && !y.IsContiguous();
            if (y.Rank == 4 && !channelsLast)
            {
                using var b3 = Op.Contiguous(b);
                using var b4 = b3.Reshape(b.Shape[0], 1, 1);
                using var bx = b4.Expand(y.Shape);
                Binary(BinaryOp.Add, y, bx, y);
            }
            else
            {
                int c = b.Shape[0];
                using var rows = flat.Reshape(-1, c);
                using var bx = b.Expand(rows.Shape);
                Binary(BinaryOp.Add, rows, bx, rows);
            }
        }
        if (e.Activation.Kind != UnaryKind.Identity) Unary(e.Activation, flat, flat);
    }

    /// <summary>A 1-D view over a tensor that is dense in NCHW or NHWC order (same memory, no copy).</summary>
    private static Tensor DenseFlat(Tensor t)
    {
        if (t.IsContiguous()) return t.Reshape(-1);
        using var nhwc = t.Permute(0, 2, 3, 1);
        return nhwc.Reshape(-1);
    }

    private void DisposeBlas()
    {
        lock (_blasLock)
        {
            foreach (var plan in _ltPlans.Values) plan.Dispose();
            _ltPlans.Clear();
            if (_lt is not null && _ltHandle != 0)
            {
                unsafe { _lt.Destroy(_ltHandle); }
                _ltHandle = 0;
            }
        }
    }
}
