using Osprey.Core.Tensors;
using Osprey.Engine.Graph;
using Osprey.Engine.Passes;

namespace Osprey.Engine;

/// <summary>
/// How an engine is built: precision, whether activations must be NHWC, and the multiple the channels of inputs read only
/// by convolutions are zero-padded to (0: none; see <see cref="PadInputChannels"/>).
/// </summary>
public sealed record BuildOptions(DType Precision = DType.Float32, bool RequireChannelsLast = true, int InputChannelMultiple = 0)
{
    public static readonly BuildOptions Default = new();
}

/// <summary>The standard optimisation pipeline over a traced graph.</summary>
public static class EngineBuilder
{
    /// <summary>
    /// dead code, constant folding (weight re-layouts), copy elimination, batch-norm folding, conv bias / residual /
    /// activation fusion, NHWC check, input channel padding (when asked), precision assignment, then constant folding
    /// again (weight casts) and dead code.
    /// </summary>
    public static IReadOnlyList<IGraphPass> StandardPasses(BuildOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var passes = new List<IGraphPass>
        {
            new DeadCodeElimination(),
            new ConstantFolding(),
            new CopyElimination(),
            new FoldBatchNorm(),
            new FuseConvBias(),
            new FuseConvResidual(),
            new FuseConvActivation(),
            new DeadCodeElimination(),
        };
        if (options.RequireChannelsLast) passes.Add(new RequireChannelsLast());
        if (options.InputChannelMultiple > 0)
        {
            passes.Add(new PadInputChannels(options.InputChannelMultiple));
            passes.Add(new DeadCodeElimination());
        }
        if (options.Precision != DType.Float32)
        {
            passes.Add(new AssignPrecision(options.Precision));
            passes.Add(new ConstantFolding());
            passes.Add(new CopyElimination());
            passes.Add(new DeadCodeElimination());
        }
        return passes;
    }

    public static IReadOnlyList<PassReport> Optimize(ComputeGraph graph, BuildOptions? options = null) =>
        new PassManager(StandardPasses(options ?? BuildOptions.Default)).Run(graph);
}
