using Osprey.Core;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda.Native;
using static Osprey.Tests.Cuda.MatMulConvSupport;

namespace Osprey.Tests.Cuda;

/// <summary>cuBLASLt/cuDNN failures become exceptions naming the status, its message and the call; bad shapes never reach the libraries.</summary>
[Collection(GpuCollection.Name)]
public class MatMulConvErrorTests
{
    [GpuFact]
    public unsafe void CublasLt_status_becomes_exception_naming_code_and_call()
    {
        _ = Gpu.Backend;
        var lt = new CuBlasLt(NativeLibraries.Load(NativeLibraries.CublasLt));
        nint created;
        lt.Check(lt.MatmulDescCreate(&created, CublasComputeType.Compute32F, CudaDataType.R32F));
        nint desc = created;
        // an attribute buffer of the wrong size is CUBLAS_STATUS_INVALID_VALUE
        var e = Assert.Throws<CudaException>(() =>
        {
            byte one = 1;
            lt.Check(lt.MatmulDescSetAttribute(desc, CublasLtMatmulDescAttribute.TransA, &one, 1));
        });
        lt.MatmulDescDestroy(desc);
        Assert.Equal("cublasLt", e.Library);
        Assert.StartsWith("CUBLAS_STATUS_", e.CodeName, StringComparison.Ordinal);
        Assert.NotEqual(0, e.Code);
        Assert.Equal("CUBLAS_STATUS_INVALID_VALUE", e.CodeName);
        Assert.Contains("MatmulDescSetAttribute", e.Call, StringComparison.Ordinal);
        Assert.Contains(e.CodeName, e.Message, StringComparison.Ordinal);
    }

    [GpuFact]
    public unsafe void Cudnn_status_becomes_exception_naming_code_message_and_call()
    {
        _ = Gpu.Backend;
        var dnn = new CuDnn(NativeLibraries.Load(NativeLibraries.Cudnn));
        nint created;
        dnn.Check(dnn.CreateTensorDescriptor(&created));
        nint desc = created;
        try
        {
            var e = Assert.Throws<CudaException>(() => dnn.Check(dnn.SetTensor4dDescriptor(desc, CudnnTensorFormat.Nhwc, CudnnDataType.Half, -3, 8, 5, 5)));
            Assert.Equal("cudnn", e.Library);
            Assert.Equal("CUDNN_STATUS_BAD_PARAM", e.CodeName[..Math.Min(e.CodeName.Length, 22)]);
            Assert.Contains("SetTensor4dDescriptor", e.Call, StringComparison.Ordinal);
        }
        finally
        {
            dnn.DestroyTensorDescriptor(desc);
        }
    }

    [GpuFact]
    public void Bad_shapes_are_rejected_before_the_libraries()
    {
        using var a = OnGpu(Values(1, 6, DType.Float16), new Shape(2, 3), DType.Float16);
        using var b = OnGpu(Values(2, 8, DType.Float16), new Shape(4, 2), DType.Float16);
        var e = Assert.Throws<OpArgumentException>(() => Op.MatMul(a, b));
        Assert.Contains("matmul", e.Message, StringComparison.Ordinal);

        using var x = OnGpu(Values(3, 2 * 4 * 5 * 5, DType.Float32), new Shape(2, 4, 5, 5), DType.Float32);
        using var w = OnGpu(Values(4, 6 * 3 * 3 * 3, DType.Float32), new Shape(6, 3, 3, 3), DType.Float32);
        Assert.Throws<OpArgumentException>(() => Op.Conv2d(x, w));
        using var w2 = OnGpu(Values(5, 6 * 4 * 7 * 7, DType.Float32), new Shape(6, 4, 7, 7), DType.Float32);
        Assert.Throws<OpArgumentException>(() => Op.Conv2d(x, w2)); // kernel larger than the input
    }
}
