using Osprey.Core.Tensors;

namespace Osprey.Detection.Training.Optim;

/// <summary>torch.cuda.amp.GradScaler's settings (torch's defaults).</summary>
public sealed record GradScalerOptions(double InitScale = 65536.0, double GrowthFactor = 2.0, double BackoffFactor = 0.5, int GrowthInterval = 2000);

/// <summary>
/// Dynamic loss scaling for FP16 training, as torch.cuda.amp.GradScaler: the loss (here: the gradient seed) is multiplied by
/// <see cref="Scale"/>; before the optimiser step the gradients are unscaled and checked; a step with an infinite or NaN
/// gradient is skipped and the scale backs off; after <see cref="GradScalerOptions.GrowthInterval"/> clean steps in a row
/// the scale grows. The optimiser's FP32 master weights receive the unscaled gradients.
/// </summary>
public sealed class GradScaler
{
    public GradScalerOptions Options { get; }

    /// <summary>The current scale (float32, as torch keeps it).</summary>
    public float Scale { get; private set; }

    /// <summary>Clean steps since the last growth or back-off.</summary>
    public int GrowthTracker { get; private set; }

    /// <summary>Steps skipped for non-finite gradients.</summary>
    public long Skipped { get; private set; }

    public GradScaler(GradScalerOptions? options = null)
    {
        Options = options ?? new GradScalerOptions();
        if (!(Options.InitScale > 0) || !(Options.GrowthFactor > 1) || !(Options.BackoffFactor is > 0 and < 1) || Options.GrowthInterval <= 0)
            throw new ArgumentOutOfRangeException(nameof(options), $"grad scaler: {Options} (need scale > 0, growth > 1, 0 < backoff < 1, interval > 0)");
        Scale = (float)Options.InitScale;
    }

    /// <summary>Restores a checkpointed scale and growth tracker (resuming an amp run).</summary>
    public void Restore(float scale, int growthTracker)
    {
        if (!(scale > 0) || !float.IsFinite(scale)) throw new ArgumentOutOfRangeException(nameof(scale), $"grad scaler: scale {scale} must be a positive finite number");
        if (growthTracker < 0 || growthTracker >= Options.GrowthInterval)
            throw new ArgumentOutOfRangeException(nameof(growthTracker), $"grad scaler: growth tracker {growthTracker} must be in [0, {Options.GrowthInterval})");
        Scale = scale;
        GrowthTracker = growthTracker;
    }

    /// <summary>Unscales the gradients in place (by torch's float32 reciprocal of the scale), steps the optimiser when they
    /// are all finite, and updates the scale. Returns whether the step was taken.</summary>
    public bool Step(Optimizer optimizer, IReadOnlyList<ParamGrad> parameters)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(parameters);
        var grads = new Tensor[parameters.Count];
        for (int i = 0; i < grads.Length; i++) grads[i] = parameters[i].Grad;
        bool finite = Gradients.AllFinite(grads);
        if (finite)
        {
            Gradients.Scale(grads, (float)(1.0 / Scale));
            optimizer.Step(parameters);
        }
        Update(!finite);
        return finite;
    }

    /// <summary>torch's _amp_update_scale_: back off and reset on an overflow, else grow every GrowthInterval clean steps
    /// (a growth that would overflow float32 is not applied).</summary>
    public void Update(bool foundInf)
    {
        if (foundInf)
        {
            Scale = (float)(Scale * Options.BackoffFactor);
            GrowthTracker = 0;
            Skipped++;
            return;
        }
        int successful = GrowthTracker + 1;
        if (successful == Options.GrowthInterval)
        {
            float grown = (float)(Scale * Options.GrowthFactor);
            if (float.IsFinite(grown)) Scale = grown;
            GrowthTracker = 0;
        }
        else GrowthTracker = successful;
    }
}
