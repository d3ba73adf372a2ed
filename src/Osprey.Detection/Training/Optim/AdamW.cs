using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda.Training;

namespace Osprey.Detection.Training.Optim;

/// <summary>torch.optim.AdamW settings (torch's defaults).</summary>
public sealed record AdamWOptions(double LearningRate = 1e-3, double Beta1 = 0.9, double Beta2 = 0.999, double Eps = 1e-8,
    double WeightDecay = 1e-2, bool AmsGrad = false);

/// <summary>
/// torch.optim.AdamW (1.13, single-tensor form): p *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
/// (amsgrad: vmax = max(vmax, v)); p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
/// </summary>
public sealed class AdamW : Optimizer
{
    public AdamWOptions Options { get; }

    public AdamW(AdamWOptions options) : base(options?.LearningRate ?? throw new ArgumentNullException(nameof(options)))
    {
        if (options.Beta1 is < 0 or >= 1 || options.Beta2 is < 0 or >= 1)
            throw new ArgumentOutOfRangeException(nameof(options), $"adamw: betas ({options.Beta1}, {options.Beta2}) must lie in [0, 1)");
        if (!(options.Eps >= 0) || !(options.WeightDecay >= 0))
            throw new ArgumentOutOfRangeException(nameof(options), $"adamw: eps {options.Eps} and weight decay {options.WeightDecay} must be >= 0");
        Options = options;
    }

    protected override string Name => "adamw";

    protected override bool AcceptsBuffer(string name) => name is "exp_avg" or "exp_avg_sq" || (Options.AmsGrad && name == "max_exp_avg_sq");

    private protected override string[]? MultiTensorBuffers => Options.AmsGrad ? ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] : ["exp_avg", "exp_avg_sq"];

    private protected override void LaunchMultiTensor(OptimizerKernels kernels, in MultiTensorLaunch l)
    {
        var o = Options;
        double lr = LearningRate, t = l.Step;
        double bc1 = 1 - Math.Pow(o.Beta1, t), bc2 = Math.Sqrt(1 - Math.Pow(o.Beta2, t));
        var h = new OptHyper
        {
            Decay = (float)(1 - lr * o.WeightDecay), HasDecay = o.WeightDecay != 0 ? 1 : 0,
            Beta1 = (float)o.Beta1, OneMinusBeta1 = (float)(1 - o.Beta1), Beta2 = (float)o.Beta2, OneMinusBeta2 = (float)(1 - o.Beta2),
            Bc2 = (float)bc2, Eps = (float)o.Eps, StepSize = (float)(lr / bc1), AmsGrad = o.AmsGrad ? 1 : 0, SkipOnInf = l.SkipOnInf,
        };
        kernels.AdamW(l.Entries, l.Chunks, l.ChunkCount, l.Masters, l.Buffer0, l.Buffer1, o.AmsGrad ? l.Buffer2 : 0, l.Status, h);
    }

    protected override Tensor Update(ParamState state, Tensor param, Tensor grad, int index)
    {
        var o = Options;
        double lr = LearningRate;
        Tensor p = o.WeightDecay != 0 ? Op.Binary(BinaryOp.Mul, param, 1 - lr * o.WeightDecay) : param;
        // buffers start at zero, so the first step gives m = (1 - b1) g, v = (1 - b2) g^2 exactly as torch
        var m = state.Buffer("exp_avg", out _);
        var v = state.Buffer("exp_avg_sq", out _);
        Op.CopyInto(Op.Add(Op.Binary(BinaryOp.Mul, m, o.Beta1), Op.Binary(BinaryOp.Mul, grad, 1 - o.Beta1)), m);
        Op.CopyInto(Op.Add(Op.Binary(BinaryOp.Mul, v, o.Beta2), Op.Binary(BinaryOp.Mul, Op.Mul(grad, grad), 1 - o.Beta2)), v);
        if (o.AmsGrad)
        {
            var vmax = state.Buffer("max_exp_avg_sq", out _);
            Op.CopyInto(Op.Maximum(vmax, v), vmax);
            v = vmax;
        }
        double t = Steps;
        double bc1 = 1 - Math.Pow(o.Beta1, t), bc2 = Math.Sqrt(1 - Math.Pow(o.Beta2, t));
        var denom = Op.Binary(BinaryOp.Add, Op.Binary(BinaryOp.Div, Op.Sqrt(v), bc2), o.Eps);
        return Op.Sub(p, Op.Binary(BinaryOp.Mul, Op.Div(m, denom), lr / bc1));
    }
}
