using Osprey.Core.Tensors;
using Osprey.Cuda.Native;

namespace Osprey.Cuda.Dnn;

/// <summary>
/// One backward convolution (input gradient when <see cref="Filter"/> is false, weight gradient when true) for a
/// <see cref="ConvKey"/>: the forward descriptors (x, w, y, conv) of its own <see cref="ConvPlan"/>, and the
/// cuDNN legacy-API algorithm chosen by measurement on the first call's real buffers
/// (cudnnFindConvolutionBackwardData/FilterAlgorithmEx). Created once per shape, reused.
/// </summary>
internal sealed unsafe class ConvBackwardPlan : IDisposable
{
    private readonly CuDnn _dnn;
    public readonly ConvPlan Desc;
    public readonly bool Filter;
    public int Algo { get; private set; }
    public nuint WorkspaceBytes { get; private set; }
    public float MeasuredMs { get; private set; }
    /// <summary>Set when cuDNN offered no usable algorithm for this shape (a NOT_SUPPORTED answer): the caller computes it another way.</summary>
    public bool Unsupported { get; private set; }

    public ConvBackwardPlan(CuDnn dnn, in ConvKey key, bool filter)
    {
        _dnn = dnn;
        Filter = filter;
        Desc = new ConvPlan(dnn, key);
    }

    private string What => Filter ? "conv2d_backward_filter" : "conv2d_backward_data";

    /// <summary>Largest workspace any algorithm of this direction asks for, up to <paramref name="cap"/> bytes.</summary>
    public nuint MaxWorkspace(nint handle, nuint cap)
    {
        nuint max = 0;
        int count = Filter ? (int)CudnnConvBwdFilterAlgo.FftTiling : (int)CudnnConvBwdDataAlgo.WinogradNonfused;
        for (int a = 0; a <= count; a++)
        {
            nuint bytes = 0;
            int status = Filter
                ? _dnn.GetConvolutionBackwardFilterWorkspaceSize(handle, Desc.X, Desc.Y, Desc.Conv, Desc.W, (CudnnConvBwdFilterAlgo)a, &bytes)
                : _dnn.GetConvolutionBackwardDataWorkspaceSize(handle, Desc.W, Desc.Y, Desc.Conv, Desc.X, (CudnnConvBwdDataAlgo)a, &bytes);
            if (status != 0) continue; // algorithm not applicable
            if (bytes <= cap && bytes > max) max = bytes;
        }
        return max;
    }

    /// <summary>
    /// Times every applicable algorithm on these buffers (the output, dx or dw, is overwritten) and keeps the
    /// fastest that fits the workspace. x, w, dy: the forward input (or its gradient), weight (or its gradient), output gradient.
    /// Sets <see cref="Unsupported"/> instead when cuDNN answers NOT_SUPPORTED or no candidate succeeded.
    /// </summary>
    public void Search(nint handle, nint x, nint w, nint dy, nint workspace, nuint workspaceBytes)
    {
        const int Max = 16;
        var perf = stackalloc CudnnConvBwdAlgoPerf[Max];
        int count = 0;
        int status = Filter
            ? _dnn.FindConvolutionBackwardFilterAlgorithmEx(handle, Desc.X, x, Desc.Y, dy, Desc.Conv, Desc.W, w, Max, &count, perf, workspace, workspaceBytes)
            : _dnn.FindConvolutionBackwardDataAlgorithmEx(handle, Desc.W, w, Desc.Y, dy, Desc.Conv, Desc.X, x, Max, &count, perf, workspace, workspaceBytes);
        if (status / 1000 == 3) // CUDNN_STATUS_NOT_SUPPORTED and its sub-codes
        {
            Unsupported = true;
            return;
        }
        _dnn.Check(status, Filter ? "cudnnFindConvolutionBackwardFilterAlgorithmEx" : "cudnnFindConvolutionBackwardDataAlgorithmEx");
        for (int i = 0; i < count; i++)
        {
            if (perf[i].Status != 0 || perf[i].Memory > workspaceBytes) continue;
            Algo = perf[i].Algo;
            WorkspaceBytes = perf[i].Memory;
            MeasuredMs = perf[i].Time;
            // fp32 without TF32 stays on FMA math; otherwise the math type the algorithm was timed with
            if (!(Desc.Key.DType == DType.Float32 && !Desc.Key.Tf32))
                _dnn.Check(_dnn.SetConvolutionMathType(Desc.Conv, perf[i].MathType));
            return;
        }
        if (count > 0 && AllNotSupported(perf, count))
        {
            Unsupported = true;
            return;
        }
        throw new CudaException($"{What}: cuDNN found no usable algorithm for {Desc.Key} ({count} candidates, workspace {workspaceBytes} bytes)");
    }

    /// <summary>Runs the chosen algorithm: dx = conv_transpose(dy, w), or dw = correlation of x with dy (beta 0: overwritten).</summary>
    public void Run(nint handle, nint x, nint w, nint dy, nint workspace)
    {
        float one = 1f, zero = 0f;
        if (Filter)
            _dnn.Check(_dnn.ConvolutionBackwardFilter(handle, &one, Desc.X, x, Desc.Y, dy, Desc.Conv, (CudnnConvBwdFilterAlgo)Algo,
                workspace, WorkspaceBytes, &zero, Desc.W, w), "cudnnConvolutionBackwardFilter");
        else
            _dnn.Check(_dnn.ConvolutionBackwardData(handle, &one, Desc.W, w, Desc.Y, dy, Desc.Conv, (CudnnConvBwdDataAlgo)Algo,
                workspace, WorkspaceBytes, &zero, Desc.X, x), "cudnnConvolutionBackwardData");
    }

    private static bool AllNotSupported(CudnnConvBwdAlgoPerf* perf, int count)
    {
        for (int i = 0; i < count; i++)
            if (perf[i].Status / 1000 != 3) return false;
        return true;
    }

    public void Dispose() => Desc.Dispose();
}
