using Osprey.Core.Tensors;
using Osprey.Engine.Graph;

namespace Osprey.Engine.Passes;

internal static class PassUtil
{
    /// <summary>The single node reading a value, if exactly one node reads it once and it is not a graph output.</summary>
    public static (Node Node, int Index)? SoleUse(ComputeGraph g, Dictionary<Value, List<(Node, int)>> uses, Value v)
    {
        if (g.Outputs.Contains(v) || !uses.TryGetValue(v, out var list) || list.Count != 1) return null;
        return list[0];
    }

    public static bool IsConstant(Value v) => v.Buffer.Kind == ValueKind.Constant;

    /// <summary>
    /// The per-channel values of a float32 constant (or a view of one) broadcast over every dimension but axis 1
    /// (a batch-norm scale [1, C, 1, 1] expanded to the activation's shape), or null if it is not one.
    /// </summary>
    public static float[]? PerChannel(Value v, int channels)
    {
        if (!IsConstant(v) || v.DType != DType.Float32 || v.Shape.Rank < 2 || v.Shape[1] != channels) return null;
        var strides = v.Strides;
        for (int d = 0; d < v.Shape.Rank; d++)
            if (d != 1 && v.Shape[d] > 1 && strides[d] != 0) return null;
        var data = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(v.Buffer.Data!);
        var r = new float[channels];
        for (int c = 0; c < channels; c++) r[c] = data[checked((int)(v.Offset + c * strides[1]))];
        return r;
    }

    public static float[] Floats(Value constant) =>
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(constant.Data!).ToArray();

    public static byte[] Bytes(float[] values) =>
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
}
