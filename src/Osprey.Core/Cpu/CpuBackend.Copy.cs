using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

public sealed partial class CpuBackend
{
    public void Copy(Tensor source, Tensor destination)
    {
        switch (source.ElementSize)
        {
            case 1: CopyAs<byte>(source, destination); break;
            case 2: CopyAs<ushort>(source, destination); break;
            case 4: CopyAs<uint>(source, destination); break;
            default: CopyAs<ulong>(source, destination); break;
        }
    }

    private static void CopyAs<T>(Tensor src, Tensor dst) where T : unmanaged
    {
        var plan = StridedPlan.For(src, dst);
        Parallel2.For(plan.Rows, plan.Inner, (lo, hi) =>
        {
            var s = Data<T>(src);
            var d = Data<T>(dst);
            Span<long> off = stackalloc long[2];
            long si = plan.InnerStrides[0], di = plan.InnerStrides[1];
            for (long r = lo; r < hi; r++)
            {
                plan.RowOffsets(r, off);
                if (si == 1 && di == 1)
                    s.Slice((int)off[0], plan.Inner).CopyTo(d.Slice((int)off[1], plan.Inner));
                else
                    for (int i = 0; i < plan.Inner; i++) d[(int)(off[1] + i * di)] = s[(int)(off[0] + i * si)];
            }
        });
    }

    public void Fill(Tensor destination, double value)
    {
        switch (destination.DType)
        {
            case DType.Float32: FillAs(destination, (float)value); break;
            case DType.Float16: FillAs(destination, (Half)value); break;
            case DType.BFloat16: FillAs(destination, BFloat16.FromFloat((float)value)); break;
            case DType.Int8: FillAs(destination, (sbyte)value); break;
            case DType.UInt8: FillAs(destination, (byte)value); break;
            case DType.Int32: FillAs(destination, (int)value); break;
            case DType.Int64: FillAs(destination, (long)value); break;
            case DType.Bool: FillAs(destination, value != 0); break;
            default: throw new NotSupportedException(destination.DType.ToString());
        }
    }

    private static void FillAs<T>(Tensor dst, T value) where T : unmanaged
    {
        var plan = StridedPlan.For(dst);
        Parallel2.For(plan.Rows, plan.Inner, (lo, hi) =>
        {
            var d = Data<T>(dst);
            Span<long> off = stackalloc long[1];
            long di = plan.InnerStrides[0];
            for (long r = lo; r < hi; r++)
            {
                plan.RowOffsets(r, off);
                if (di == 1) d.Slice((int)off[0], plan.Inner).Fill(value);
                else for (int i = 0; i < plan.Inner; i++) d[(int)(off[0] + i * di)] = value;
            }
        });
    }
}
