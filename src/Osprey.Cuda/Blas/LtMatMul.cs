using Osprey.Core.Tensors;
using Osprey.Cuda.Native;

namespace Osprey.Cuda.Blas;

/// <summary>
/// One strided-batched product in cuBLASLt's column-major terms, after the row-major problem was mapped:
/// D (rows x cols, ld rows) = epilogue(op(A) op(B) + beta C) for each of Batch matrices.
/// </summary>
internal readonly record struct LtProblem(
    DType DType, bool Tf32,
    int Rows, int Cols, int Inner, int Batch,
    bool TransA, bool TransB,
    long StrideA, long StrideB, long StrideD,
    CublasLtEpilogue Epilogue, bool AccumulateC,
    int AlignA, int AlignB, int AlignC, int AlignD, int AlignBias);

/// <summary>
/// A cuBLASLt matmul descriptor, its four layouts and the algorithm the heuristic chose for one
/// <see cref="LtProblem"/>; created once per problem and reused (only the pointers change per call).
/// </summary>
internal sealed unsafe class LtPlan : IDisposable
{
    private readonly CuBlasLt _lt;
    public readonly nint Desc, LayoutA, LayoutB, LayoutC;
    public readonly CublasLtMatmulAlgo Algo;
    public readonly nuint WorkspaceBytes;

    public LtPlan(CuBlasLt lt, nint handle, in LtProblem p, nint bias, nuint maxWorkspace)
    {
        _lt = lt;
        try
        {
            var (dataType, compute) = Types(p.DType, p.Tf32);
            nint desc;
            lt.Check(lt.MatmulDescCreate(&desc, compute, CudaDataType.R32F));
            Desc = desc;
            lt.SetDesc(desc, CublasLtMatmulDescAttribute.TransA, (int)(p.TransA ? CublasOperation.T : CublasOperation.N));
            lt.SetDesc(desc, CublasLtMatmulDescAttribute.TransB, (int)(p.TransB ? CublasOperation.T : CublasOperation.N));
            lt.SetDesc(desc, CublasLtMatmulDescAttribute.Epilogue, (uint)p.Epilogue);
            // the heuristic reads the bias pointer's alignment; calls with the same alignment class share the plan
            if (HasBias(p.Epilogue)) lt.SetDesc(desc, CublasLtMatmulDescAttribute.BiasPointer, bias);

            // stored shapes (before op): A is Rows x Inner (or Inner x Rows when transposed), B is Inner x Cols (or Cols x Inner)
            LayoutA = Layout(lt, dataType, p.TransA ? p.Inner : p.Rows, p.TransA ? p.Rows : p.Inner, p.Batch, p.StrideA);
            LayoutB = Layout(lt, dataType, p.TransB ? p.Cols : p.Inner, p.TransB ? p.Inner : p.Cols, p.Batch, p.StrideB);
            LayoutC = Layout(lt, dataType, p.Rows, p.Cols, p.Batch, p.StrideD);

            nint pref;
            lt.Check(lt.MatmulPreferenceCreate(&pref));
            try
            {
                lt.SetPreference(pref, CublasLtPreferenceAttribute.MaxWorkspaceBytes, (ulong)maxWorkspace);
                lt.SetPreference(pref, CublasLtPreferenceAttribute.MinAlignmentABytes, (uint)p.AlignA);
                lt.SetPreference(pref, CublasLtPreferenceAttribute.MinAlignmentBBytes, (uint)p.AlignB);
                lt.SetPreference(pref, CublasLtPreferenceAttribute.MinAlignmentCBytes, (uint)p.AlignC);
                lt.SetPreference(pref, CublasLtPreferenceAttribute.MinAlignmentDBytes, (uint)p.AlignD);
                CublasLtHeuristicResult result;
                int found = 0;
                lt.Check(lt.MatmulAlgoGetHeuristic(handle, desc, LayoutA, LayoutB, LayoutC, LayoutC, pref, 1, &result, &found));
                if (found < 1 || result.State != 0)
                    throw new CudaException($"cuBLASLt found no algorithm for {p} (workspace limit {maxWorkspace} bytes)");
                Algo = result.Algo;
                WorkspaceBytes = result.WorkspaceSize;
            }
            finally
            {
                lt.MatmulPreferenceDestroy(pref);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public static bool HasBias(CublasLtEpilogue e) => ((uint)e & (uint)CublasLtEpilogue.Bias) != 0;

    public static (CudaDataType Data, CublasComputeType Compute) Types(DType dtype, bool tf32) => dtype switch
    {
        // fp16/bf16: fp32 accumulation and fp32 alpha/beta, as torch.matmul by default
        DType.Float16 => (CudaDataType.R16F, CublasComputeType.Compute32F),
        DType.BFloat16 => (CudaDataType.R16BF, CublasComputeType.Compute32F),
        // fp32: exact fp32 unless the caller allowed TF32 tensor cores
        DType.Float32 => (CudaDataType.R32F, tf32 ? CublasComputeType.Compute32FFastTf32 : CublasComputeType.Compute32F),
        _ => throw new CudaException($"matmul: cuBLASLt path has no dtype {dtype.Name()}"),
    };

    private static nint Layout(CuBlasLt lt, CudaDataType type, int rows, int cols, int batch, long stride)
    {
        nint layout;
        lt.Check(lt.MatrixLayoutCreate(&layout, type, (ulong)rows, (ulong)cols, Math.Max(rows, 1)));
        if (batch > 1)
        {
            lt.SetLayout(layout, CublasLtLayoutAttribute.BatchCount, batch);
            lt.SetLayout(layout, CublasLtLayoutAttribute.StridedBatchOffset, stride);
        }
        return layout;
    }

    /// <summary>Queues D = epilogue(alpha op(A) op(B) + beta C) on the stream.</summary>
    public void Run(nint handle, nint a, nint b, nint c, nint d, nint bias, float beta, nint workspace, nuint workspaceBytes, nint stream)
    {
        if (bias != 0) _lt.SetDesc(Desc, CublasLtMatmulDescAttribute.BiasPointer, bias);
        float alpha = 1f;
        var algo = Algo;
        _lt.Check(_lt.Matmul(handle, Desc, &alpha, a, LayoutA, b, LayoutB, &beta, c, LayoutC, d, LayoutC, &algo, workspace, workspaceBytes, stream));
    }

    public void Dispose()
    {
        if (LayoutA != 0) _lt.MatrixLayoutDestroy(LayoutA);
        if (LayoutB != 0) _lt.MatrixLayoutDestroy(LayoutB);
        if (LayoutC != 0) _lt.MatrixLayoutDestroy(LayoutC);
        if (Desc != 0) _lt.MatmulDescDestroy(Desc);
    }
}
