using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

/// <summary>
/// A <see cref="StridedPlan"/> for element-wise kernels, where visiting order does not matter:
/// dimensions are first put in the memory order of the last operand (the output), so a channels_last
/// (or otherwise permuted) dense tensor becomes one contiguous row instead of rows of stride C.
/// </summary>
internal static class ElementwisePlan
{
    public static StridedPlan For(params Tensor[] tensors)
    {
        var outT = tensors[^1];
        int rank = outT.Rank;
        var order = new int[rank];
        for (int i = 0; i < rank; i++) order[i] = i;
        var os = outT.Strides;
        // stable insertion sort by descending output stride (size-1 dimensions are dropped by the plan anyway)
        for (int i = 1; i < rank; i++)
        {
            int d = order[i], j = i - 1;
            while (j >= 0 && os[order[j]] < os[d]) { order[j + 1] = order[j]; j--; }
            order[j + 1] = d;
        }
        var dims = new int[rank];
        var strides = new long[tensors.Length][];
        for (int k = 0; k < tensors.Length; k++) strides[k] = new long[rank];
        for (int i = 0; i < rank; i++)
        {
            dims[i] = outT.Shape[order[i]];
            for (int k = 0; k < tensors.Length; k++) strides[k][i] = tensors[k].Strides[order[i]];
        }
        return StridedPlan.For(new Shape(dims), strides);
    }
}
