namespace Osprey.Tests.Support;

/// <summary>
/// Tests that assert on the process-wide CPU memory counters (live allocations) must not run while
/// other test classes allocate: this collection runs on its own, after the parallel ones.
/// </summary>
[CollectionDefinition(MemoryCounters, DisableParallelization = true)]
public sealed class MemoryCountersCollection
{
    public const string MemoryCounters = "memory counters";
}

/// <summary>Tests that redirect Console.Out (a process-wide setting) run one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class ConsoleCollection
{
    public const string Name = "console output";
}
