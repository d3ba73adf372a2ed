namespace Osprey.Tests.Support;

/// <summary>
/// Where tests find their data. Fixtures are copied beside the test binary (the project copies Fixtures/**),
/// so they are found wherever the suite runs, a packed GPU host included. The shared data (../shared beside
/// the checkout) is found from the checkout above the test binary or the working directory, or from
/// OSPREY_SHARED_DIR when the suite runs outside a checkout.
/// </summary>
public static class RepoPaths
{
    public static string Fixture(params string[] parts) => Path.Combine([AppContext.BaseDirectory, "Fixtures", .. parts]);

    public static string Shared(params string[] parts) => Path.Combine([SharedRoot, .. parts]);

    private static string SharedRoot { get; } = FindShared();

    private static string FindShared()
    {
        string? env = Environment.GetEnvironmentVariable("OSPREY_SHARED_DIR");
        if (!string.IsNullOrEmpty(env)) return Path.GetFullPath(env);
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Osprey.slnx")))
                    return Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared"));
        throw new InvalidOperationException(
            $"the shared data folder was not found: no Osprey.slnx above {AppContext.BaseDirectory} or {Environment.CurrentDirectory}; set OSPREY_SHARED_DIR");
    }
}
