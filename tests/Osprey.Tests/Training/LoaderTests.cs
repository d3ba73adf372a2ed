using Osprey.Detection.Training.Data;

namespace Osprey.Tests.Training;

public class LoaderTests
{
    /// <summary>A sample whose value depends on its index and its random stream, with random delays to shuffle timing.</summary>
    private static (int Index, int Draw) Load(int i, Random rng)
    {
        Thread.Sleep(Random.Shared.Next(0, 3));
        return (i, rng.Next());
    }

    private static List<(int, int)> Flatten(IEnumerable<(int, int)[]> batches) => batches.SelectMany(b => b).ToList();

    [Fact]
    public void Batches_are_identical_for_a_seed_whatever_the_workers()
    {
        var one = Flatten(new DataLoader<(int, int)>(37, Load, new LoaderOptions(4, 1, 4, Seed: 11)).Epoch(0));
        var four = Flatten(new DataLoader<(int, int)>(37, Load, new LoaderOptions(4, 4, 9, Seed: 11)).Epoch(0));
        Assert.Equal(one, four);
        Assert.Equal(37, one.Count);
        Assert.Equal(Enumerable.Range(0, 37), one.Select(p => p.Item1).Order());
        var other = Flatten(new DataLoader<(int, int)>(37, Load, new LoaderOptions(4, 2, 4, Seed: 12)).Epoch(0));
        Assert.NotEqual(one, other);
        var epoch1 = Flatten(new DataLoader<(int, int)>(37, Load, new LoaderOptions(4, 2, 4, Seed: 11)).Epoch(1));
        Assert.NotEqual(one.Select(p => p.Item1), epoch1.Select(p => p.Item1));
        var ordered = Flatten(new DataLoader<(int, int)>(10, Load, new LoaderOptions(3, 2, 4, Shuffle: false)).Epoch(0));
        Assert.Equal(Enumerable.Range(0, 10), ordered.Select(p => p.Item1));
    }

    [Fact]
    public void Batch_sizes_and_drop_last()
    {
        var l = new DataLoader<int>(10, (i, _) => i, new LoaderOptions(4, 2, 8, Shuffle: false));
        Assert.Equal(new[] { 4, 4, 2 }, l.Epoch(0).Select(b => b.Length));
        Assert.Equal(3, l.BatchesPerEpoch);
        var d = new DataLoader<int>(10, (i, _) => i, new LoaderOptions(4, 2, 8, DropLast: true));
        Assert.Equal(new[] { 4, 4 }, d.Epoch(0).Select(b => b.Length));
        Assert.Empty(new DataLoader<int>(0, (i, _) => i).Epoch(0));
        Assert.Throws<ArgumentException>(() => new DataLoader<int>(3, (i, _) => i, new LoaderOptions(0)));
    }

    [Fact]
    public void Workers_stay_within_the_prefetch_bound()
    {
        int started = 0, consumed = 0, worst = 0;
        var l = new DataLoader<int>(60, (i, _) =>
        {
            int ahead = Interlocked.Increment(ref started) - Volatile.Read(ref consumed);
            int w;
            while ((w = Volatile.Read(ref worst)) < ahead && Interlocked.CompareExchange(ref worst, ahead, w) != w) { }
            return i;
        }, new LoaderOptions(2, 4, 6));
        foreach (var b in l.Epoch(0))
        {
            Thread.Sleep(2);
            Interlocked.Add(ref consumed, b.Length);
        }
        Assert.Equal(60, started);
        Assert.InRange(worst, 1, 6 + 2);   // the window plus the batch being handed over
    }

    [Fact]
    public void A_failing_sample_is_reported_at_its_position_with_its_cause()
    {
        var l = new DataLoader<int>(20, (i, _) => i == 13 ? throw new DatasetException($"img{i}.jpg: broken") : i, new LoaderOptions(4, 3, 8, Shuffle: false));
        var seen = new List<int>();
        var e = Assert.Throws<DataLoaderException>(() => { foreach (var b in l.Epoch(0)) seen.AddRange(b); });
        Assert.Contains("sample 13", e.Message);
        Assert.Contains("img13.jpg: broken", e.Message);
        Assert.IsType<DatasetException>(e.InnerException);
        Assert.Equal(Enumerable.Range(0, 12), seen);
    }

    [Fact]
    public void Cancellation_and_early_exit_stop_the_workers()
    {
        int loads = 0;
        var l = new DataLoader<int>(10_000, (i, _) => { Interlocked.Increment(ref loads); return i; }, new LoaderOptions(2, 3, 8));
        using var cts = new CancellationTokenSource();
        int batches = 0;
        Assert.ThrowsAny<OperationCanceledException>(() =>
        {
            foreach (var b in l.Epoch(0, cts.Token)) if (++batches == 3) cts.Cancel();
        });
        Thread.Sleep(50);
        int after = Volatile.Read(ref loads);
        Assert.InRange(after, 6, 6 + 8 + 3);
        foreach (var b in l.Epoch(0)) break;                      // disposing the enumerator early ends the epoch
        Thread.Sleep(50);
        Assert.InRange(Volatile.Read(ref loads) - after, 1, 8 + 3);
    }
}
