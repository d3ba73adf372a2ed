namespace Osprey.Detection.Training.Data;

/// <summary>Settings of <see cref="DataLoader{T}"/>.</summary>
/// <param name="BatchSize">Samples per batch.</param>
/// <param name="Workers">Threads that load samples (decode + augment).</param>
/// <param name="Prefetch">Samples loaded ahead of the consumer at most (the bounded queue); at least one batch.</param>
/// <param name="Shuffle">Visit samples in a seeded random order each epoch (else in index order).</param>
/// <param name="Seed">Seeds the order and every sample's random stream.</param>
/// <param name="DropLast">Leave out a last, incomplete batch.</param>
public sealed record LoaderOptions(int BatchSize = 2, int Workers = 2, int Prefetch = 8, bool Shuffle = true, int Seed = 0, bool DropLast = false)
{
    internal void Check()
    {
        if (BatchSize <= 0 || Workers <= 0 || Prefetch <= 0)
            throw new ArgumentException($"loader: batch size {BatchSize}, workers {Workers} and prefetch {Prefetch} must be positive");
    }
}

/// <summary>A sample that failed to load: which sample, in which epoch, and why (the inner exception names the file).</summary>
public sealed class DataLoaderException(string message, Exception inner) : Core.OspreyException(message, inner);

/// <summary>
/// A multithreaded loader with prefetch. Each epoch visits the samples in an order drawn from (seed, epoch); sample i's
/// load function gets its own <see cref="Random"/> seeded from (seed, epoch, i), so batches are identical for a seed
/// whatever the number of workers or their timing. Workers run at most <see cref="LoaderOptions.Prefetch"/> samples ahead
/// of the consumer. A failure is raised when the consumer reaches that sample, as <see cref="DataLoaderException"/>.
/// Disposing the enumerator or cancelling the token stops the workers.
/// </summary>
public sealed class DataLoader<T>
{
    private readonly int _count;
    private readonly Func<int, Random, T> _load;

    public LoaderOptions Options { get; }

    /// <param name="count">Number of samples.</param>
    /// <param name="load">Loads sample <c>index</c> using the given random stream (thread-safe; called from workers).</param>
    public DataLoader(int count, Func<int, Random, T> load, LoaderOptions? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        _count = count;
        _load = load ?? throw new ArgumentNullException(nameof(load));
        Options = options ?? new LoaderOptions();
        Options.Check();
    }

    /// <summary>Batches per epoch.</summary>
    public int BatchesPerEpoch => Options.DropLast ? _count / Options.BatchSize : (_count + Options.BatchSize - 1) / Options.BatchSize;

    /// <summary>The sample order of an epoch.</summary>
    public int[] Order(int epoch)
    {
        var order = new int[_count];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        if (Options.Shuffle) new Random(Mix(Options.Seed, epoch, -1)).Shuffle(order);
        return order;
    }

    /// <summary>The batches of one epoch.</summary>
    public IEnumerable<T[]> Epoch(int epoch, CancellationToken cancellation = default)
    {
        int[] order = Order(epoch);
        int total = Options.DropLast ? order.Length / Options.BatchSize * Options.BatchSize : order.Length;
        if (total == 0) yield break;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        var slots = new TaskCompletionSource<T>[total];
        for (int i = 0; i < total; i++) slots[i] = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var window = new SemaphoreSlim(Math.Max(Options.Prefetch, Options.BatchSize));
        int next = -1;
        var token = cts.Token;
        var workers = new Task[Math.Min(Options.Workers, total)];
        for (int w = 0; w < workers.Length; w++)
            workers[w] = Task.Factory.StartNew(() =>
            {
                while (true)
                {
                    try { window.Wait(token); }
                    catch (OperationCanceledException) { return; }
                    int i = Interlocked.Increment(ref next);
                    if (i >= total) return;
                    int index = order[i];
                    try
                    {
                        slots[i].SetResult(_load(index, new Random(Mix(Options.Seed, epoch, index))));
                    }
                    catch (Exception e)
                    {
                        slots[i].SetException(new DataLoaderException($"loader: sample {index} (position {i} of epoch {epoch}) failed: {e.Message}", e));
                    }
                }
            }, token, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            var batch = new List<T>(Options.BatchSize);
            for (int i = 0; i < total; i++)
            {
                T item;
                try
                {
                    slots[i].Task.Wait(token);
                    item = slots[i].Task.Result;
                }
                catch (AggregateException e) when (e.InnerException is DataLoaderException d)
                {
                    throw new DataLoaderException(d.Message, d.InnerException!);
                }
                window.Release();
                batch.Add(item);
                if (batch.Count == Options.BatchSize || i == total - 1)
                {
                    yield return batch.ToArray();
                    batch.Clear();
                }
            }
        }
        finally
        {
            cts.Cancel();
            // the workers only block on the window, which observes the token, so they end promptly
            try { Task.WaitAll(workers); }
            catch (AggregateException) { }
        }
    }

    /// <summary>A 31-bit seed from (seed, epoch, index) through splitmix64.</summary>
    internal static int Mix(int seed, int epoch, int index)
    {
        ulong z = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ (ulong)(uint)epoch << 32 ^ (uint)index;
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (int)(z & 0x7FFFFFFF);
    }
}
