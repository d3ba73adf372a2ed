using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

public sealed partial class CpuBackend
{
    /// <summary>Elements per chunk when a row must be converted (float16/bfloat16) or gathered (strided) into float32 scratch.</summary>
    internal const int Chunk = 256;

    public void Unary(UnaryOp op, Tensor x, Tensor y)
    {
        switch (op.Kind)
        {
            case UnaryKind.Identity: UnaryAs<IdentityOp>(x, y, op); break;
            case UnaryKind.Neg: UnaryAs<NegOp>(x, y, op); break;
            case UnaryKind.Abs: UnaryAs<AbsOp>(x, y, op); break;
            case UnaryKind.Sqrt: UnaryAs<SqrtOp>(x, y, op); break;
            case UnaryKind.Exp: UnaryAs<ExpOp>(x, y, op); break;
            case UnaryKind.Log: UnaryAs<LogOp>(x, y, op); break;
            case UnaryKind.Relu: UnaryAs<ReluOp>(x, y, op); break;
            case UnaryKind.Relu6: UnaryAs<Relu6Op>(x, y, op); break;
            case UnaryKind.LeakyRelu: UnaryAs<LeakyReluOp>(x, y, op); break;
            case UnaryKind.Silu: UnaryAs<SiluOp>(x, y, op); break;
            case UnaryKind.Sigmoid: UnaryAs<SigmoidOp>(x, y, op); break;
            case UnaryKind.HardSigmoid: UnaryAs<HardSigmoidOp>(x, y, op); break;
            case UnaryKind.HardSwish: UnaryAs<HardSwishOp>(x, y, op); break;
            case UnaryKind.Tanh: UnaryAs<TanhOp>(x, y, op); break;
            case UnaryKind.Gelu: UnaryAs<GeluOp>(x, y, op); break;
            case UnaryKind.Clamp: UnaryAs<ClampOp>(x, y, op); break;
            default: throw new NotSupportedException($"cpu unary: {op.Kind}");
        }
    }

    private static void UnaryAs<TOp>(Tensor x, Tensor y, UnaryOp op) where TOp : struct, IUnaryOperator
    {
        switch (x.DType)
        {
            case DType.Float32: UnaryRun<float, TOp>(x, y, op.A, op.B); break;
            case DType.Float16: UnaryRun<Half, TOp>(x, y, op.A, op.B); break;
            case DType.BFloat16: UnaryRun<BFloat16, TOp>(x, y, op.A, op.B); break;
            default: throw new OpArgumentException($"{op.Kind.ToString().ToLowerInvariant()}: cpu unary needs a floating tensor, got {x.DType.Name()} {x.Shape}");
        }
    }

    /// <summary>Applies TOp to every element of x into y, in place on the rows when float32 and dense, otherwise through float32 scratch.</summary>
    internal static void UnaryRun<T, TOp>(Tensor x, Tensor y, float a, float b) where T : unmanaged where TOp : struct, IUnaryOperator
    {
        var plan = ElementwisePlan.For(x, y);
        Parallel2.For(plan.Rows, plan.Inner, (lo, hi) =>
        {
            var xs = Data<T>(x);
            var ys = Data<T>(y);
            Span<long> off = stackalloc long[2];
            Span<float> buf = stackalloc float[Chunk];
            long sx = plan.InnerStrides[0], sy = plan.InnerStrides[1];
            int n = plan.Inner;
            for (long r = lo; r < hi; r++)
            {
                plan.RowOffsets(r, off);
                if (typeof(T) == typeof(float) && sx == 1 && sy == 1)
                {
                    var xf = System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(xs.Slice((int)off[0], n));
                    var yf = System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(ys.Slice((int)off[1], n));
                    SimdDrivers.Unary<TOp>(xf, yf, a, b);
                    continue;
                }
                for (int c = 0; c < n; c += Chunk)
                {
                    var chunk = buf[..Math.Min(Chunk, n - c)];
                    Elem.Load<T>(xs, off[0] + c * sx, sx, chunk);
                    SimdDrivers.Unary<TOp>(chunk, chunk, a, b);
                    Elem.Store<T>(chunk, ys, off[1] + c * sy, sy);
                }
            }
        });
    }
}
