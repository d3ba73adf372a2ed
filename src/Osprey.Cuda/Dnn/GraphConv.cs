using Osprey.Core.Tensors;
using Osprey.Cuda.Memory;
using Osprey.Cuda.Native;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda.Dnn;

/// <summary>Device addresses of one convolution's operands (0 where absent).</summary>
internal readonly record struct ConvBuffers(nint X, nint W, nint Y, nint Bias, nint Residual);

/// <summary>
/// A forward convolution through cuDNN's backend API: one operation graph, the execution plans the
/// heuristics (mode A, then the fallback list) offer, each timed on the first call's real buffers with
/// CUDA events; the fastest is kept for the shape. The graph may also compute the epilogue: bias and
/// residual additions and ReLU as pointwise operations on fp32 virtual tensors, run in the same kernel. Used for fp16/bf16 (and fp32 when TF32 is allowed):
/// exact fp32 stays on the legacy API with FMA math, whose algorithms cannot use TF32.
/// </summary>
internal sealed unsafe class GraphConv : IDisposable
{
    private const long UidX = 1, UidW = 2, UidY = 3, UidBias = 4, UidResidual = 5, UidVirtual = 100;
    // candidates per heuristic mode: engines that compile at plan time (runtime fusion) cost about a second each
    private const int MaxCandidates = 8;

    private readonly CuDnnGraph _g;
    private readonly List<nint> _owned = [];
    private nint _plan;

    /// <summary>The epilogue steps this graph computes after the convolution (the caller does the rest).</summary>
    public ConvFusion Fused { get; private set; }
    public long WorkspaceBytes { get; private set; }
    public float MeasuredMs { get; private set; }
    public int Candidates { get; private set; }
    /// <summary>The heuristic mode and the position in its result list of the chosen plan (what an engine file stores).</summary>
    public CudnnHeurMode Mode { get; private set; }
    public int Index { get; private set; }

    /// <summary>Builds the graph and chooses a plan by timing; returns null when cuDNN offers no plan for this shape.</summary>
    public static GraphConv? Build(CuDnnGraph g, nint handle, in ConvKey k, ConvFusion fusion, long maxWorkspace,
        in ConvBuffers buffers, Func<long, DeviceBuffer?> workspace, CudaStream stream)
    {
        var conv = new GraphConv(g) { Fused = fusion };
        try
        {
            return conv.Choose(handle, k, maxWorkspace, buffers, workspace, stream) ? conv : Fail(conv);
        }
        catch
        {
            conv.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Builds the graph with a stored choice (heuristic mode, position in its list): no timing. Throws a
    /// <see cref="CudaException"/> naming the choice when the list is shorter, the plan is not supported on this device,
    /// or its workspace differs from the stored one (another cuDNN build or device).
    /// </summary>
    public static GraphConv Pinned(CuDnnGraph g, nint handle, in ConvKey k, ConvFusion fusion, CudnnHeurMode mode, int index, long storedWorkspace)
    {
        var conv = new GraphConv(g) { Fused = fusion };
        try
        {
            var graph = conv.OperationGraph(handle, k);
            var plans = new List<(nint Plan, long Workspace, CudnnHeurMode Mode, int Index)>();
            conv.CollectPlans(handle, graph, mode, long.MaxValue, plans, index + 1, only: index);
            if (plans.Count == 0)
                throw new CudaException($"conv2d: stored plan {index} of heuristic mode {mode} is not offered or not supported for {k} on this device: rebuild the engine");
            var (plan, ws, _, _) = plans[0];
            if (ws != storedWorkspace)
                throw new CudaException($"conv2d: stored plan {index} of heuristic mode {mode} needs {ws} workspace bytes here, {storedWorkspace} when measured: rebuild the engine");
            conv._plan = plan;
            conv.WorkspaceBytes = ws;
            conv.Mode = mode;
            conv.Index = index;
            conv.Candidates = 1;
            conv.MeasuredMs = float.NaN;
            return conv;
        }
        catch
        {
            conv.Dispose();
            throw;
        }
    }

    private static GraphConv? Fail(GraphConv c)
    {
        c.Dispose();
        return null;
    }

    private GraphConv(CuDnnGraph g) => _g = g;

    private nint Own(nint d)
    {
        _owned.Add(d);
        return d;
    }

    private nint Tensor(long uid, CudnnDataType type, ReadOnlySpan<long> dims, ReadOnlySpan<long> strides, long alignment, bool isVirtual = false)
    {
        var t = Own(_g.Create(CudnnBackendDescriptorType.Tensor));
        if (isVirtual) _g.Set(t, CudnnBackendAttributeName.TensorIsVirtual, CudnnBackendAttributeType.Boolean, (byte)1);
        _g.Set(t, CudnnBackendAttributeName.TensorDataType, CudnnBackendAttributeType.DataType, (int)type);
        _g.Set(t, CudnnBackendAttributeName.TensorDimensions, CudnnBackendAttributeType.Int64, dims);
        _g.Set(t, CudnnBackendAttributeName.TensorStrides, CudnnBackendAttributeType.Int64, strides);
        _g.Set(t, CudnnBackendAttributeName.TensorUniqueId, CudnnBackendAttributeType.Int64, uid);
        _g.Set(t, CudnnBackendAttributeName.TensorByteAlignment, CudnnBackendAttributeType.Int64, alignment);
        _g.Done(t, "tensor");
        return t;
    }

    private static long[] Strides(bool nhwc, long n, long c, long h, long w) =>
        nhwc ? [h * w * c, 1, w * c, c] : [c * h * w, h * w, w, 1];

    /// <summary>The operation graph: convolution and the epilogue chain in <see cref="Fused"/>.</summary>
    private nint OperationGraph(nint handle, in ConvKey k)
    {
        var type = ConvPlan.DataType(k.DType);
        int alignment = k.Alignment;
        int cg = k.C / k.Groups;
        int oh = (k.H + 2 * k.PadH - k.DilationH * (k.KH - 1) - 1) / k.StrideH + 1;
        int ow = (k.W + 2 * k.PadW - k.DilationW * (k.KW - 1) - 1) / k.StrideW + 1;
        var xt = Tensor(UidX, type, [k.N, k.C, k.H, k.W], Strides(k.Nhwc, k.N, k.C, k.H, k.W), alignment);
        var wt = Tensor(UidW, type, [k.O, cg, k.KH, k.KW], Strides(k.Nhwc, k.O, cg, k.KH, k.KW), alignment);
        long[] yDims = [k.N, k.O, oh, ow], yStrides = Strides(k.Nhwc, k.N, k.O, oh, ow);
        var yt = Tensor(UidY, type, yDims, yStrides, alignment);
        // the epilogue chain: conv -> (+ bias) -> (+ residual) -> (relu) -> y, intermediates virtual fp32
        int steps = (Fused.HasFlag(ConvFusion.Bias) ? 1 : 0) + (Fused.HasFlag(ConvFusion.Residual) ? 1 : 0) + (Fused.HasFlag(ConvFusion.Relu) ? 1 : 0);
        long virtualUid = UidVirtual;
        nint Next(ref int left) => --left == 0 ? yt : Tensor(virtualUid++, CudnnDataType.Float, yDims, yStrides, alignment, isVirtual: true);
        int remaining = steps + 1;
        var convOut = Next(ref remaining);

        var cd = Own(_g.Create(CudnnBackendDescriptorType.Convolution));
        _g.Set(cd, CudnnBackendAttributeName.ConvolutionCompType, CudnnBackendAttributeType.DataType, (int)CudnnDataType.Float);
        _g.Set(cd, CudnnBackendAttributeName.ConvolutionConvMode, CudnnBackendAttributeType.ConvolutionMode, (int)CudnnConvolutionMode.CrossCorrelation);
        _g.Set(cd, CudnnBackendAttributeName.ConvolutionSpatialDims, CudnnBackendAttributeType.Int64, 2L);
        _g.Set(cd, CudnnBackendAttributeName.ConvolutionDilations, CudnnBackendAttributeType.Int64, (ReadOnlySpan<long>)[k.DilationH, k.DilationW]);
        _g.Set(cd, CudnnBackendAttributeName.ConvolutionFilterStrides, CudnnBackendAttributeType.Int64, (ReadOnlySpan<long>)[k.StrideH, k.StrideW]);
        _g.Set(cd, CudnnBackendAttributeName.ConvolutionPrePaddings, CudnnBackendAttributeType.Int64, (ReadOnlySpan<long>)[k.PadH, k.PadW]);
        _g.Set(cd, CudnnBackendAttributeName.ConvolutionPostPaddings, CudnnBackendAttributeType.Int64, (ReadOnlySpan<long>)[k.PadH, k.PadW]);
        _g.Done(cd, "convolution");

        var op = Own(_g.Create(CudnnBackendDescriptorType.OperationConvolutionForward));
        _g.Set(op, CudnnBackendAttributeName.ConvForwardX, CudnnBackendAttributeType.BackendDescriptor, xt);
        _g.Set(op, CudnnBackendAttributeName.ConvForwardW, CudnnBackendAttributeType.BackendDescriptor, wt);
        _g.Set(op, CudnnBackendAttributeName.ConvForwardY, CudnnBackendAttributeType.BackendDescriptor, convOut);
        _g.Set(op, CudnnBackendAttributeName.ConvForwardConvDesc, CudnnBackendAttributeType.BackendDescriptor, cd);
        _g.Set(op, CudnnBackendAttributeName.ConvForwardAlpha, CudnnBackendAttributeType.Float, 1f);
        _g.Set(op, CudnnBackendAttributeName.ConvForwardBeta, CudnnBackendAttributeType.Float, 0f);
        _g.Done(op, "convolution forward operation");

        var ops = new List<nint> { op };
        var current = convOut;
        if (Fused.HasFlag(ConvFusion.Bias))
        {
            var bias = Tensor(UidBias, type, [1, k.O, 1, 1], [k.O, 1, 1, 1], alignment);
            var next = Next(ref remaining);
            ops.Add(Pointwise(CudnnPointwiseMode.Add, current, bias, next));
            current = next;
        }
        if (Fused.HasFlag(ConvFusion.Residual))
        {
            var residual = Tensor(UidResidual, type, yDims, yStrides, alignment);
            var next = Next(ref remaining);
            ops.Add(Pointwise(CudnnPointwiseMode.Add, current, residual, next));
            current = next;
        }
        if (Fused.HasFlag(ConvFusion.Relu))
        {
            var next = Next(ref remaining);
            ops.Add(Pointwise(CudnnPointwiseMode.ReluForward, current, 0, next));
        }

        var graph = Own(_g.Create(CudnnBackendDescriptorType.OperationGraph));
        _g.Set(graph, CudnnBackendAttributeName.OperationGraphOps, CudnnBackendAttributeType.BackendDescriptor, (ReadOnlySpan<nint>)ops.ToArray());
        _g.Set(graph, CudnnBackendAttributeName.OperationGraphHandle, CudnnBackendAttributeType.Handle, handle);
        _g.Done(graph, "operation graph");
        return graph;
    }

    private bool Choose(nint handle, in ConvKey k, long maxWorkspace, in ConvBuffers buffers,
        Func<long, DeviceBuffer?> workspace, CudaStream stream)
    {
        var graph = OperationGraph(handle, k);
        var plans = new List<(nint Plan, long Workspace, CudnnHeurMode Mode, int Index)>();
        foreach (var mode in (ReadOnlySpan<CudnnHeurMode>)[CudnnHeurMode.A, CudnnHeurMode.Fallback])
            CollectPlans(handle, graph, mode, maxWorkspace, plans, MaxCandidates);
        Candidates = plans.Count;
        if (plans.Count == 0) return false;

        // time each candidate: one warm-up run, then the best of three
        long maxWs = 0;
        foreach (var p in plans) maxWs = Math.Max(maxWs, p.Workspace);
        using var ws = workspace(maxWs);
        nint wsp = (nint)(ws?.Pointer ?? 0);
        using var start = new CudaEvent();
        using var end = new CudaEvent();
        float best = float.MaxValue;
        foreach (var (plan, wsBytes, mode, index) in plans)
        {
            if (Run(handle, plan, buffers, wsp) != 0) continue;
            float t = float.MaxValue;
            for (int r = 0; r < 3; r++)
            {
                start.Record(stream);
                int status = Run(handle, plan, buffers, wsp);
                end.Record(stream);
                end.Synchronize();
                if (status != 0) { t = float.MaxValue; break; }
                t = Math.Min(t, CudaEvent.Elapsed(start, end));
            }
            if (t < best)
            {
                best = t;
                _plan = plan;
                WorkspaceBytes = wsBytes;
                Mode = mode;
                Index = index;
            }
        }
        MeasuredMs = best;
        return _plan != 0;
    }

    /// <summary>
    /// Finalises the execution plans of the first <paramref name="max"/> entries of one heuristic mode's result list
    /// (skipping those the device does not support or whose workspace exceeds the cap), each with its position in the list.
    /// </summary>
    private void CollectPlans(nint handle, nint graph, CudnnHeurMode mode, long maxWorkspace, List<(nint, long, CudnnHeurMode, int)> plans,
        int max, int only = -1)
    {
        var heur = Own(_g.Create(CudnnBackendDescriptorType.EngineHeuristics));
        _g.Set(heur, CudnnBackendAttributeName.EngineHeurOperationGraph, CudnnBackendAttributeType.BackendDescriptor, graph);
        _g.Set(heur, CudnnBackendAttributeName.EngineHeurMode, CudnnBackendAttributeType.HeurMode, (int)mode);
        if (_g.Finalize(heur) != 0) return; // this heuristic mode does not apply to the graph
        long count = 0;
        _g.Check(_g.GetAttribute(heur, CudnnBackendAttributeName.EngineHeurResults, CudnnBackendAttributeType.BackendDescriptor, 0, &count, null),
            "cudnnBackendGetAttribute(ENGINEHEUR_RESULTS count)");
        int n = (int)Math.Min(count, max);
        if (n <= 0) return;
        var configs = new nint[n];
        for (int i = 0; i < n; i++) configs[i] = Own(_g.Create(CudnnBackendDescriptorType.EngineConfig));
        long got = 0;
        fixed (nint* pc = configs)
            _g.Check(_g.GetAttribute(heur, CudnnBackendAttributeName.EngineHeurResults, CudnnBackendAttributeType.BackendDescriptor, n, &got, pc),
                "cudnnBackendGetAttribute(ENGINEHEUR_RESULTS)");
        for (int i = 0; i < (int)Math.Min(got, n); i++)
        {
            if (only >= 0 && i != only) continue;
            var plan = Own(_g.Create(CudnnBackendDescriptorType.ExecutionPlan));
            _g.Set(plan, CudnnBackendAttributeName.ExecutionPlanHandle, CudnnBackendAttributeType.Handle, handle);
            _g.Set(plan, CudnnBackendAttributeName.ExecutionPlanEngineConfig, CudnnBackendAttributeType.BackendDescriptor, configs[i]);
            if (_g.Finalize(plan) != 0) continue; // engine config not supported for this graph on this device
            long bytes = 0, written = 0;
            _g.Check(_g.GetAttribute(plan, CudnnBackendAttributeName.ExecutionPlanWorkspaceSize, CudnnBackendAttributeType.Int64, 1, &written, &bytes),
                "cudnnBackendGetAttribute(EXECUTION_PLAN_WORKSPACE_SIZE)");
            if (bytes <= maxWorkspace) plans.Add((plan, bytes, mode, i));
        }
    }

    private nint Pointwise(CudnnPointwiseMode mode, nint x, nint b, nint y)
    {
        var pw = Own(_g.Create(CudnnBackendDescriptorType.Pointwise));
        _g.Set(pw, CudnnBackendAttributeName.PointwiseMode, CudnnBackendAttributeType.PointwiseMode, (int)mode);
        _g.Set(pw, CudnnBackendAttributeName.PointwiseMathPrec, CudnnBackendAttributeType.DataType, (int)CudnnDataType.Float);
        _g.Done(pw, $"pointwise {mode}");
        var op = Own(_g.Create(CudnnBackendDescriptorType.OperationPointwise));
        _g.Set(op, CudnnBackendAttributeName.OperationPointwisePwDescriptor, CudnnBackendAttributeType.BackendDescriptor, pw);
        _g.Set(op, CudnnBackendAttributeName.OperationPointwiseX, CudnnBackendAttributeType.BackendDescriptor, x);
        if (b != 0) _g.Set(op, CudnnBackendAttributeName.OperationPointwiseB, CudnnBackendAttributeType.BackendDescriptor, b);
        _g.Set(op, CudnnBackendAttributeName.OperationPointwiseY, CudnnBackendAttributeType.BackendDescriptor, y);
        _g.Done(op, $"pointwise {mode} operation");
        return op;
    }

    /// <summary>Queues the graph (convolution and the fused epilogue steps) with the chosen plan; returns cuDNN's status.</summary>
    public int Run(nint handle, in ConvBuffers buffers, nint workspace) => Run(handle, _plan, buffers, workspace);

    private int Run(nint handle, nint plan, in ConvBuffers b, nint workspace)
    {
        nint pack;
        _g.Check(_g.CreateDescriptor(CudnnBackendDescriptorType.VariantPack, &pack), "cudnnBackendCreateDescriptor(VARIANT_PACK)");
        try
        {
            long* uids = stackalloc long[5];
            nint* ptrs = stackalloc nint[5];
            int n = 0;
            uids[n] = UidX; ptrs[n++] = b.X;
            uids[n] = UidW; ptrs[n++] = b.W;
            uids[n] = UidY; ptrs[n++] = b.Y;
            if (Fused.HasFlag(ConvFusion.Bias)) { uids[n] = UidBias; ptrs[n++] = b.Bias; }
            if (Fused.HasFlag(ConvFusion.Residual)) { uids[n] = UidResidual; ptrs[n++] = b.Residual; }
            _g.Check(_g.SetAttribute(pack, CudnnBackendAttributeName.VariantPackUniqueIds, CudnnBackendAttributeType.Int64, n, uids), "variant pack ids");
            _g.Check(_g.SetAttribute(pack, CudnnBackendAttributeName.VariantPackDataPointers, CudnnBackendAttributeType.VoidPtr, n, ptrs), "variant pack pointers");
            _g.Check(_g.SetAttribute(pack, CudnnBackendAttributeName.VariantPackWorkspace, CudnnBackendAttributeType.VoidPtr, 1, &workspace), "variant pack workspace");
            _g.Done(pack, "variant pack");
            return _g.Execute(handle, plan, pack);
        }
        finally
        {
            _g.DestroyDescriptor(pack);
        }
    }

    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--) _g.DestroyDescriptor(_owned[i]);
        _owned.Clear();
        _plan = 0;
    }
}
