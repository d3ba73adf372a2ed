using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Training.Optim;

namespace Osprey.Detection.Training.Loop;

/// <summary>What <see cref="MixedPrecision.Step"/> did: whether the optimiser stepped, and the gradient norm before clipping
/// (NaN when clipping is off or the step was skipped).</summary>
public readonly record struct PrecisionStep(bool Taken, double GradNorm);

/// <summary>
/// The optimiser step of a training run under <see cref="TrainPrecision"/>, as torch.amp does it:
/// <list type="bullet">
/// <item>Gradients of 16-bit parameters are cast to float32 first (torch's grads live on its FP32 parameters), so unscaling
/// and clipping run in float32 and never underflow.</item>
/// <item>amp: the loss gradient was multiplied by <see cref="LossScale"/>; an inf/NaN anywhere skips the step and halves the
/// scale (<see cref="GradScaler"/>); otherwise the gradients are unscaled, clipped, and the optimiser steps.</item>
/// <item>The optimiser updates FP32 master weights and writes them back rounded into the 16-bit parameters
/// (<see cref="Optimizer"/>).</item>
/// </list>
/// fp32 runs exactly the plain clip-and-step sequence.
/// </summary>
public sealed class MixedPrecision
{
    /// <param name="precision">The run's precision.</param>
    /// <param name="scaler">The loss scaler's settings (amp).</param>
    /// <param name="multiTensor">On a CUDA device, run the whole step (check, unscale, clip, update, 16-bit refresh) as
    /// <see cref="Optimizer.TryStepMultiTensor"/>'s three launches; false: one tensor at a time (the reference path).</param>
    public MixedPrecision(TrainPrecision precision, GradScalerOptions? scaler = null, bool multiTensor = true)
    {
        Precision = precision;
        MultiTensor = multiTensor;
        if (precision == TrainPrecision.Amp) Scaler = new GradScaler(scaler);
    }

    public TrainPrecision Precision { get; }

    /// <summary>Whether <see cref="Step"/> uses the multi-tensor kernels where they apply (CUDA).</summary>
    public bool MultiTensor { get; }

    /// <summary>The dynamic loss scaler (amp only).</summary>
    public GradScaler? Scaler { get; }

    /// <summary>The factor to multiply the loss gradient by (the scaler's scale under amp, else 1).</summary>
    public double LossScale => Scaler?.Scale ?? 1.0;

    /// <summary>Clean up after a forward whose loss was not finite under amp: the step is skipped and the scale backs off,
    /// as torch's scaler does when the resulting gradients are inf/NaN.</summary>
    public void SkipNonFinite()
    {
        if (Scaler is null) throw new InvalidOperationException($"--precision {Precision.Name()}: only amp skips non-finite steps");
        Scaler.Update(foundInf: true);
    }

    /// <summary>Unscale (amp), check (amp), clip at <paramref name="clipNorm"/> (0: off) and step. <paramref name="grads"/> are
    /// the parameters' accumulated gradients (any floating dtype; float32 ones may be modified in place).</summary>
    public PrecisionStep Step(Optimizer optimizer, IReadOnlyList<Tensor> parameters, IReadOnlyList<Tensor> grads, double clipNorm)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(grads);
        if (parameters.Count != grads.Count) throw new ArgumentException($"mixed precision: {parameters.Count} parameters, {grads.Count} gradients");
        float inv = Scaler is { } s ? (float)(1.0 / s.Scale) : 1f;
        if (MultiTensor && optimizer.TryStepMultiTensor(parameters, grads, inv, Scaler is not null, clipNorm) is { } fused)
        {
            Scaler?.Update(foundInf: !fused.Taken);
            return new PrecisionStep(fused.Taken, fused.GradNorm);
        }
        using var scope = new TensorScope();
        var g32 = new Tensor[grads.Count];
        for (int i = 0; i < g32.Length; i++) g32[i] = grads[i].DType == DType.Float32 ? grads[i] : Op.Cast(grads[i], DType.Float32);
        double norm = double.NaN;
        if (Scaler is not null || clipNorm > 0)
        {
            // one pass and one download for the check and the norm: each tensor's sum of squares (inf/NaN exactly when the
            // tensor holds one; float16 gradients cannot overflow it in float32)
            var squares = SumsOfSquares(g32);
            if (Scaler is not null && !Array.TrueForAll(squares, float.IsFinite))
            {
                Scaler.Update(foundInf: true);
                return new PrecisionStep(false, double.NaN);
            }
            if (clipNorm > 0)
            {
                // torch's clip_grad_norm_: the norm of the per-tensor norms, of the unscaled gradients
                double sum = 0;
                foreach (float sq in squares)
                {
                    float n = MathF.Sqrt(sq) * inv;
                    sum += (double)n * n;
                }
                norm = Math.Sqrt(sum);
            }
        }
        double coef = clipNorm > 0 ? Math.Min(1.0, clipNorm / (norm + 1e-6)) : 1.0;
        if (inv != 1f || coef != 1.0) Gradients.Scale(g32, inv * coef);
        var pairs = new ParamGrad[g32.Length];
        for (int i = 0; i < pairs.Length; i++) pairs[i] = new ParamGrad(parameters[i], g32[i]);
        optimizer.Step(pairs);
        Scaler?.Update(foundInf: false);
        return new PrecisionStep(true, norm);
    }

    private static float[] SumsOfSquares(Tensor[] grads)
    {
        using var scope = new TensorScope();
        var parts = new Tensor[grads.Length];
        for (int i = 0; i < parts.Length; i++) parts[i] = Op.Sum(Op.Mul(grads[i], grads[i])).Reshape(1);
        return Op.Concat(parts, 0).ToArray<float>();
    }
}
