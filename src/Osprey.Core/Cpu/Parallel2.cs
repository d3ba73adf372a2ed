using System.Runtime.ExceptionServices;

namespace Osprey.Core.Cpu;

/// <summary>
/// Splits work across threads only when there is enough of it to pay. Work is cut into more chunks
/// than threads and each thread takes the next free chunk (a shared counter), so a thread that the OS
/// deschedules (other processes on the same cores) only delays the chunk it holds: the others take
/// the rest. The calling thread works too and never waits for a helper that has not started; it
/// waits only for chunks already taken, spinning briefly and then blocking.
/// </summary>
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
        int chunks = (int)Math.Min(rows, threads * 8L);
        ForEach(chunks, c => body(rows * c / chunks, rows * (c + 1) / chunks));
    }

    /// <summary>
    /// Runs body(i) once for every i in [0, count), on the calling thread and up to
    /// <see cref="Environment.ProcessorCount"/> - 1 thread-pool helpers, each taking the next unclaimed i.
    /// The first exception thrown by body is rethrown here after every taken item has finished.
    /// </summary>
    public static void ForEach(int count, Action<int> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (count <= 0) return;
        int threads = Environment.ProcessorCount;
        if (threads == 1 || count == 1)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        var job = new Job(count, body);
        int helpers = Math.Min(threads - 1, count - 1);
        for (int h = 0; h < helpers; h++) ThreadPool.UnsafeQueueUserWorkItem(job, preferLocal: false);
        job.Execute();
        job.WaitAll();
        if (job.Error is not null) ExceptionDispatchInfo.Throw(job.Error);
    }

    private sealed class Job(int count, Action<int> body) : IThreadPoolWorkItem
    {
        private int _next = -1;
        private int _done;
        private Exception? _error;

        public Exception? Error => Volatile.Read(ref _error);

        /// <summary>Takes items until none is left (a helper that starts late finds none and returns at once).</summary>
        public void Execute()
        {
            int i;
            while ((i = Interlocked.Increment(ref _next)) < count)
            {
                try { body(i); }
                catch (Exception e) { Interlocked.CompareExchange(ref _error, e, null); }
                if (Interlocked.Increment(ref _done) == count)
                    lock (this) Monitor.PulseAll(this);
            }
        }

        /// <summary>Waits until every item has finished: a short spin (the last chunk is usually nearly done), then a blocking wait.</summary>
        public void WaitAll()
        {
            for (int spin = 0; spin < 50 && Volatile.Read(ref _done) < count; spin++)
                Thread.SpinWait(20);
            if (Volatile.Read(ref _done) >= count) return;
            lock (this)
            {
                while (Volatile.Read(ref _done) < count) Monitor.Wait(this);
            }
        }
    }
}
