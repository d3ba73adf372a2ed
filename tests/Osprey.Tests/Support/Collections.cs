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

/// <summary>
/// Tests that redirect Console.Out or AnsiConsole.Console (process-wide settings) or run CLI commands run one at a time:
/// the commands' Spectre.Console progress, status and live displays refuse to run concurrently in one process
/// ("Trying to run one or more interactive functions concurrently"), and a redirect would capture another test's output.
/// </summary>
[CollectionDefinition(Name)]
public sealed class ConsoleCollection
{
    public const string Name = "console output";
}
