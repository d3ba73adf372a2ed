using System.Globalization;
using System.Text;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Engine.Graph;

/// <summary>A readable text listing of a graph, one line per value and node, for docs and debugging.</summary>
public static class GraphDump
{
    public static string Format(ComputeGraph graph, bool includeConstants = false)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var sb = new StringBuilder();
        foreach (var (k, v) in graph.Metadata) sb.Append(CultureInfo.InvariantCulture, $"# {k} = {v}\n");
        foreach (var v in graph.Inputs) sb.Append(CultureInfo.InvariantCulture, $"input {v} \"{v.Name}\": {Type(v)}\n");
        long constBytes = graph.Constants.Sum(c => c.Bytes);
        sb.Append(CultureInfo.InvariantCulture, $"constants: {graph.Constants.Count} ({constBytes:N0} bytes)\n");
        if (includeConstants)
            foreach (var c in graph.Constants) sb.Append(CultureInfo.InvariantCulture, $"const {c} \"{c.Name}\": {Type(c)}\n");
        foreach (var n in graph.Nodes)
        {
            var o = n.Output;
            string args = string.Join(", ", n.Inputs.Select(i => i.Kind == ValueKind.Constant ? $"{i}:const" : i.ToString()));
            sb.Append(CultureInfo.InvariantCulture, $"{o} = {Op(n)}({args}) : {Type(o)}\n");
        }
        sb.Append("outputs: ").AppendJoin(", ", graph.Outputs.Select(o => $"\"{o.Name}\" {o}")).Append('\n');
        return sb.ToString();
    }

    private static string Type(Value v)
    {
        string layout = v.IsAlias ? $"view[{string.Join(",", v.Strides)}]+{v.Offset}" : v.Shape.Rank == 4 ? (v.Format == MemoryFormat.ChannelsLast ? "nhwc" : "nchw") : "";
        return $"{v.DType.Name()}{v.Shape} {layout}".TrimEnd();
    }

    private static string Op(Node n) => n.Attrs switch
    {
        ConvAttrs a => $"conv2d<k={n.Inputs[1].Shape[2]}x{n.Inputs[1].Shape[3]} s={a.Geometry.StrideH},{a.Geometry.StrideW} p={a.Geometry.PadH},{a.Geometry.PadW}"
            + (a.Geometry.DilationH != 1 ? $" d={a.Geometry.DilationH}" : "") + (a.Geometry.Groups != 1 ? $" g={a.Geometry.Groups}" : "")
            + (a.HasBias ? " +bias" : "") + (a.HasResidual ? " +residual" : "") + Act(a.Activation) + ">",
        MatMulAttrs a => $"matmul<{(a.TransposeA ? "T" : "N")}{(a.TransposeB ? "T" : "N")}{(a.HasBias ? " +bias" : "")}{(a.HasResidual ? " +residual" : "")}{Act(a.Activation)}>",
        UnaryAttrs a => Name(a.Op),
        BinaryAttrs a => a.Op.ToString().ToLowerInvariant(),
        ReduceAttrs a => $"reduce_{a.Op.ToString().ToLowerInvariant()}<axes={string.Join(",", a.Axes)}>",
        AxisAttrs a => $"{n.Kind.ToString().ToLowerInvariant()}<axis={a.Axis}>",
        SoftmaxAttrs a => $"{(a.Log ? "log_softmax" : "softmax")}<axis={a.Axis}>",
        PoolAttrs a => $"{a.Kind.ToString().ToLowerInvariant()}_pool<k={a.Geometry.KernelH}x{a.Geometry.KernelW} s={a.Geometry.StrideH} p={a.Geometry.PadH}{(a.Geometry.CeilMode ? " ceil" : "")}>",
        ResizeAttrs a => $"resize_{a.Mode.ToString().ToLowerInvariant()}",
        ViewAttrs => "view",
        _ => n.Kind.ToString().ToLowerInvariant(),
    };

    private static string Act(UnaryOp a) => a.Kind == UnaryKind.Identity ? "" : " " + Name(a);

    private static string Name(UnaryOp a) => a.Kind switch
    {
        UnaryKind.LeakyRelu => string.Create(CultureInfo.InvariantCulture, $"leaky_relu({a.A})"),
        UnaryKind.Clamp => string.Create(CultureInfo.InvariantCulture, $"clamp({a.A},{a.B})"),
        _ => a.Kind.ToString().ToLowerInvariant(),
    };
}
