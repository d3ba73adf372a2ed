using System.Buffers;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

public sealed partial class CpuBackend
{
    public void Softmax(Tensor x, int axis, bool log, Tensor y)
    {
        switch (x.DType)
        {
            case DType.Float32: SoftmaxRun<float>(x, axis, log, y); break;
            case DType.Float16: SoftmaxRun<Half>(x, axis, log, y); break;
            case DType.BFloat16: SoftmaxRun<BFloat16>(x, axis, log, y); break;
            default: throw new OpArgumentException($"{(log ? "log_softmax" : "softmax")}: needs a floating tensor, got {x.DType.Name()} {x.Shape}");
        }
    }

    /// <summary>
    /// Numerically stable (log-)softmax of each line along the axis: m = max, e = exp(x - m), s = sum e
    /// (float64), y = e / s or x - m - log s. A line is loaded into float32 scratch (strided when the
    /// axis is not the last), computed with the SIMD drivers and stored with one rounding.
    /// </summary>
    private static void SoftmaxRun<T>(Tensor x, int axis, bool log, Tensor y) where T : unmanaged
    {
        int n = x.Shape[axis];
        long inner = 1, outer = 1;
        for (int d = axis + 1; d < x.Rank; d++) inner *= x.Shape[d];
        for (int d = 0; d < axis; d++) outer *= x.Shape[d];
        if (n == 0) return;
        Parallel2.For(outer * inner, n * 8L, (lo, hi) =>
        {
            var xs = Data<T>(x);
            var ys = Data<T>(y);
            float[] rented = ArrayPool<float>.Shared.Rent(2 * n);
            try
            {
                var line = rented.AsSpan(0, n);
                var e = rented.AsSpan(n, n);
                for (long u = lo; u < hi; u++)
                {
                    long start = u / inner * n * inner + u % inner;
                    Elem.Load<T>(xs, start, inner, line);
                    float m = SimdDrivers.Max(line);
                    SimdDrivers.BinaryScalar<float, SubOp<float>>(line, m, false, line);
                    SimdDrivers.Unary<ExpOp>(line, e, 0, 0);
                    double s = SimdDrivers.Sum(e);
                    if (log) SimdDrivers.BinaryScalar<float, SubOp<float>>(line, (float)Math.Log(s), false, line);
                    else SimdDrivers.BinaryScalar<float, MulOp<float>>(e, (float)(1 / s), false, line);
                    Elem.Store<T>(line, ys, start, inner);
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(rented);
            }
        });
    }
}
