using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda.Training;

namespace Osprey.Detection.Training.Optim;

/// <summary>torch.optim.SGD settings; the defaults are ODTK's (lr 0.01, momentum 0.9, weight decay 1e-4).</summary>
public sealed record SgdOptions(double LearningRate = 0.01, double Momentum = 0.9, double Dampening = 0, double WeightDecay = 1e-4, bool Nesterov = false);

/// <summary>
/// torch.optim.SGD (1.13, single-tensor form): d = g + wd p; buf = d on the first step, else momentum buf + (1 - dampening) d;
/// d = nesterov ? d + momentum buf : buf; p -= lr d.
/// </summary>
public sealed class Sgd : Optimizer
{
    public SgdOptions Options { get; }

    public Sgd(SgdOptions options) : base(options?.LearningRate ?? throw new ArgumentNullException(nameof(options)))
    {
        if (options.Momentum < 0 || options.WeightDecay < 0)
            throw new ArgumentOutOfRangeException(nameof(options), $"sgd: momentum {options.Momentum} and weight decay {options.WeightDecay} must be >= 0");
        if (options.Nesterov && (options.Momentum <= 0 || options.Dampening != 0))
            throw new ArgumentException("sgd: Nesterov momentum requires a momentum and zero dampening (as torch)");
        Options = options;
    }

    protected override string Name => "sgd";

    protected override bool AcceptsBuffer(string name) => name == "momentum";

    private protected override string[]? MultiTensorBuffers => Options.Momentum != 0 ? ["momentum"] : [];

    private protected override void LaunchMultiTensor(OptimizerKernels kernels, in MultiTensorLaunch l)
    {
        var o = Options;
        var h = new OptHyper
        {
            Lr = (float)LearningRate, WeightDecay = o.WeightDecay != 0 ? (float)o.WeightDecay : 0f, Momentum = o.Momentum != 0 ? (float)o.Momentum : 0f,
            OneMinusDampening = (float)(1 - o.Dampening), Nesterov = o.Nesterov ? 1 : 0, SkipOnInf = l.SkipOnInf,
        };
        kernels.Sgd(l.Entries, l.Chunks, l.ChunkCount, l.Masters, l.Buffer0, l.Status, h);
    }

    protected override Tensor Update(ParamState state, Tensor param, Tensor grad, int index)
    {
        var o = Options;
        Tensor d = o.WeightDecay != 0 ? Op.Add(grad, Op.Binary(BinaryOp.Mul, param, o.WeightDecay)) : grad;
        if (o.Momentum != 0)
        {
            var buf = state.Buffer("momentum", out bool fresh);
            Op.CopyInto(fresh ? d : Op.Add(Op.Binary(BinaryOp.Mul, buf, o.Momentum), Op.Binary(BinaryOp.Mul, d, 1 - o.Dampening)), buf);
            d = o.Nesterov ? Op.Add(d, Op.Binary(BinaryOp.Mul, buf, o.Momentum)) : buf;
        }
        return Op.Sub(param, Op.Binary(BinaryOp.Mul, d, LearningRate));
    }
}
