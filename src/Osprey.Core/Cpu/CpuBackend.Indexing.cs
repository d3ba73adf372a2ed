using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

public sealed partial class CpuBackend
{
    public void Gather(Tensor x, int axis, Tensor index, Tensor y) =>
        GatherBy(x, axis, index, index.Strides.ToArray(), y);

    /// <summary>index_select is a gather whose index is broadcast (stride 0) over every dimension but the axis.</summary>
    public void IndexSelect(Tensor x, int axis, Tensor index, Tensor y)
    {
        var strides = new long[y.Rank];
        strides[axis] = index.Strides[0];
        GatherBy(x, axis, index, strides, y);
    }

    /// <summary>y[p] = x[p with p[axis] replaced by index[p]] for every position p of y; indexStrides walk index over y's shape.</summary>
    private static void GatherBy(Tensor x, int axis, Tensor index, long[] indexStrides, Tensor y)
    {
        switch (x.ElementSize)
        {
            case 1: GatherRun<byte>(x, axis, index, indexStrides, y); break;
            case 2: GatherRun<ushort>(x, axis, index, indexStrides, y); break;
            case 4: GatherRun<uint>(x, axis, index, indexStrides, y); break;
            default: GatherRun<ulong>(x, axis, index, indexStrides, y); break;
        }
    }

    private static void GatherRun<T>(Tensor x, int axis, Tensor index, long[] indexStrides, Tensor y) where T : unmanaged
    {
        var xStrides = x.Strides.ToArray();
        long step = xStrides[axis];
        xStrides[axis] = 0;
        bool wide = index.DType == DType.Int64;
        var plan = StridedPlan.For(y.Shape, [xStrides, indexStrides, y.Strides.ToArray()]);
        Parallel2.For(plan.Rows, plan.Inner, (lo, hi) =>
        {
            var xs = Data<T>(x);
            var ys = Data<T>(y);
            var i64 = wide ? Data<long>(index) : default;
            var i32 = wide ? default : Data<int>(index);
            Span<long> off = stackalloc long[3];
            long sx = plan.InnerStrides[0], si = plan.InnerStrides[1], sy = plan.InnerStrides[2];
            for (long r = lo; r < hi; r++)
            {
                plan.RowOffsets(r, off);
                for (int i = 0; i < plan.Inner; i++)
                {
                    long p = off[1] + i * si;
                    long at = wide ? i64[(int)p] : i32[(int)p];
                    ys[(int)(off[2] + i * sy)] = xs[(int)(off[0] + i * sx + at * step)];
                }
            }
        });
    }
}
