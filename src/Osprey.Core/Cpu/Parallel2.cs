namespace Osprey.Core.Cpu;

/// <summary>Splits a range of rows across threads only when there is enough work to pay for it.</summary>
public static class Parallel2
{
    /// <summary>Below this many elements a loop runs on the calling thread.</summary>
    public const long MinParallelWork = 1 << 15;

    /// <summary>Runs body(lo, hi) over [0, rows) in chunks; costPerRow is a rough element count per row.</summary>
    public static void For(long rows, long costPerRow, Action<long, long> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (rows <= 0) return;
        int threads = Environment.ProcessorCount;
        if (threads == 1 || rows == 1 || rows * Math.Max(costPerRow, 1) < MinParallelWork)
        {
            body(0, rows);
            return;
        }
        int chunks = (int)Math.Min(rows, threads * 4L);
        Parallel.For(0, chunks, c => body(rows * c / chunks, rows * (c + 1) / chunks));
    }
}
