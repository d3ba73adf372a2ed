using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Engine.Graph;

namespace Osprey.Engine.Passes;

/// <summary>Shared checks for the passes that fold work into a convolution's epilogue.</summary>
internal static class ConvFusion
{
    /// <summary>A float32 convolution with a constant weight, no residual and no activation yet: its output may still take a scale, shift or add.</summary>
    public static bool IsPlain(Node n) =>
        n.Kind == OpKind.Conv2d && n.AttrsAs<ConvAttrs>() is { HasResidual: false } a && a.Activation.Kind == UnaryKind.Identity;

    public static bool HasConstantParams(Node conv)
    {
        var a = conv.AttrsAs<ConvAttrs>();
        var w = conv.Inputs[1];
        return w.Kind == ValueKind.Constant && w.DType == DType.Float32 && (!a.HasBias || conv.Inputs[2].Kind == ValueKind.Constant);
    }

    /// <summary>The other operand of a binary node at use index i.</summary>
    public static Value Other(Node binary, int i) => binary.Inputs[1 - i];

    /// <summary>Current bias of a convolution as floats (zeros if it has none).</summary>
    public static float[] Bias(Node conv)
    {
        var a = conv.AttrsAs<ConvAttrs>();
        int o = conv.Inputs[1].Shape[0];
        return a.HasBias ? PassUtil.Floats(conv.Inputs[2]) : new float[o];
    }

    /// <summary>Sets a convolution's bias to new constant values (adding the bias input if it had none).</summary>
    public static void SetBias(ComputeGraph g, Node conv, float[] bias)
    {
        var a = conv.AttrsAs<ConvAttrs>();
        var c = g.AddConstant($"{conv.Name}.bias", new Shape(bias.Length), DType.Float32, MemoryFormat.Contiguous, PassUtil.Bytes(bias));
        if (a.HasBias) conv.Inputs[2] = c;
        else
        {
            conv.Inputs.Insert(2, c);
            conv.Attrs = a with { HasBias = true };
        }
    }
}

/// <summary>
/// Folds an inference batch norm written as per-channel ops (y = conv(x) * scale + shift, as <c>Op.BatchNorm</c> or an
/// ONNX importer produces it) into the convolution's weight and bias. Osprey's own models fold at load, so this
/// matters for imported graphs.
/// </summary>
public sealed class FoldBatchNorm : IGraphPass
{
    public string Name => "fold-batch-norm";

    public bool Run(ComputeGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        bool changed = false;
        foreach (var conv in graph.Nodes.ToArray())
        {
            if (!ConvFusion.IsPlain(conv) || !ConvFusion.HasConstantParams(conv)) continue;
            var uses = graph.Uses();
            if (PassUtil.SoleUse(graph, uses, conv.Output) is not { } use
                || use.Node.Kind != OpKind.Binary || use.Node.AttrsAs<BinaryAttrs>().Op != BinaryOp.Mul) continue;
            var w = conv.Inputs[1];
            int o = w.Shape[0];
            if (PassUtil.PerChannel(ConvFusion.Other(use.Node, use.Index), o) is not { } scale) continue;
            var wf = PassUtil.Floats(w);
            int per = wf.Length / o;
            for (int k = 0; k < o; k++)
                for (int i = 0; i < per; i++) wf[k * per + i] *= scale[k];
            var bias = ConvFusion.Bias(conv);
            for (int k = 0; k < o; k++) bias[k] *= scale[k];
            conv.Inputs[1] = graph.AddConstant($"{conv.Name}.weight", w.Shape, w.DType, w.Format, PassUtil.Bytes(wf));
            ConvFusion.SetBias(graph, conv, bias);
            graph.TakeOutput(conv, use.Node);
            changed = true;
        }
        return changed;
    }
}

/// <summary>Folds a per-channel constant added to a convolution's output into its bias.</summary>
public sealed class FuseConvBias : IGraphPass
{
    public string Name => "fuse-conv-bias";

    public bool Run(ComputeGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        bool changed = false;
        foreach (var conv in graph.Nodes.ToArray())
        {
            if (!ConvFusion.IsPlain(conv) || !ConvFusion.HasConstantParams(conv)) continue;
            if (PassUtil.SoleUse(graph, graph.Uses(), conv.Output) is not { } use
                || use.Node.Kind != OpKind.Binary || use.Node.AttrsAs<BinaryAttrs>().Op != BinaryOp.Add) continue;
            if (PassUtil.PerChannel(ConvFusion.Other(use.Node, use.Index), conv.Inputs[1].Shape[0]) is not { } shift) continue;
            var bias = ConvFusion.Bias(conv);
            for (int k = 0; k < bias.Length; k++) bias[k] += shift[k];
            ConvFusion.SetBias(graph, conv, bias);
            graph.TakeOutput(conv, use.Node);
            changed = true;
        }
        return changed;
    }
}

/// <summary>conv(x) + r, r an activation of the output's shape and layout, becomes the convolution's residual epilogue.</summary>
public sealed class FuseConvResidual : IGraphPass
{
    public string Name => "fuse-conv-residual";

    public bool Run(ComputeGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        bool changed = false;
        foreach (var conv in graph.Nodes.ToArray())
        {
            if (!ConvFusion.IsPlain(conv)) continue;
            if (PassUtil.SoleUse(graph, graph.Uses(), conv.Output) is not { } use
                || use.Node.Kind != OpKind.Binary || use.Node.AttrsAs<BinaryAttrs>().Op != BinaryOp.Add) continue;
            var r = ConvFusion.Other(use.Node, use.Index);
            if (r == conv.Output || r.Shape != conv.Output.Shape || r.DType != conv.Output.DType || r.DenseFormat != conv.Output.Format) continue;
            conv.Inputs.Add(r);
            conv.Attrs = conv.AttrsAs<ConvAttrs>() with { HasResidual = true };
            graph.TakeOutput(conv, use.Node);
            changed = true;
        }
        return changed;
    }
}

/// <summary>An activation applied to a convolution's output (nothing else reading it) moves into its epilogue.</summary>
public sealed class FuseConvActivation(IReadOnlySet<UnaryKind>? supported = null) : IGraphPass
{
    /// <summary>IBackend.Conv2d takes any activation; a backend that fuses fewer natively still applies them in its epilogue.</summary>
    private readonly IReadOnlySet<UnaryKind> _supported = supported ?? Enum.GetValues<UnaryKind>().ToHashSet();

    public string Name => "fuse-conv-activation";

    public bool Run(ComputeGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        bool changed = false;
        foreach (var conv in graph.Nodes.ToArray())
        {
            if (conv.Kind != OpKind.Conv2d || conv.AttrsAs<ConvAttrs>().Activation.Kind != UnaryKind.Identity) continue;
            if (PassUtil.SoleUse(graph, graph.Uses(), conv.Output) is not { } use || use.Node.Kind != OpKind.Unary) continue;
            var act = use.Node.AttrsAs<UnaryAttrs>().Op;
            if (!_supported.Contains(act.Kind)) continue;
            conv.Attrs = conv.AttrsAs<ConvAttrs>() with { Activation = act };
            graph.TakeOutput(conv, use.Node);
            changed = true;
        }
        return changed;
    }
}
