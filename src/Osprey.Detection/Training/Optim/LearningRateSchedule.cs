namespace Osprey.Detection.Training.Optim;

/// <summary>
/// ODTK's schedule (a LambdaLR over the base rate): during warm-up (iteration &lt;= <see cref="Warmup"/>) the factor rises
/// linearly from 0.1 to 1 (0.9 it / warmup + 0.1); afterwards it is gamma^(milestones passed), a milestone counting from its
/// own iteration. Defaults: lr 0.01, warm-up 1000, milestones 60k and 80k of 90k iterations, gamma 0.1.
/// </summary>
public sealed record LearningRateSchedule(double BaseRate = 0.01, int Warmup = 1000, int[]? Milestones = null, double Gamma = 0.1)
{
    public int[] Milestones { get; init; } = Milestones ?? [60_000, 80_000];

    /// <summary>ODTK's defaults (90k iterations in all).</summary>
    public static LearningRateSchedule Odtk { get; } = new();

    /// <summary>The multiplier of the base rate at <paramref name="iteration"/> (0 for the first step).</summary>
    public double Factor(long iteration)
    {
        if (iteration < 0) throw new ArgumentOutOfRangeException(nameof(iteration), $"lr schedule: iteration {iteration} is negative");
        if (Warmup > 0 && iteration <= Warmup) return 0.9 * iteration / Warmup + 0.1;
        int passed = 0;
        foreach (int m in Milestones) if (m <= iteration) passed++;
        return Math.Pow(Gamma, passed);
    }

    /// <summary>The learning rate of the step taken at <paramref name="iteration"/>.</summary>
    public double Rate(long iteration) => BaseRate * Factor(iteration);
}
