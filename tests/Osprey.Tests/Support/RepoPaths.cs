namespace Osprey.Tests.Support;

/// <summary>Paths of the repository (found from the test binary upwards) and of the shared data beside it.</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    public static string Fixture(params string[] parts) => Path.Combine([Root, "tests", "Osprey.Tests", "Fixtures", .. parts]);

    public static string Shared(params string[] parts) => Path.Combine([Root, "..", "shared", .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Osprey.slnx"))) return dir.FullName;
        throw new InvalidOperationException($"Osprey.slnx not found above {AppContext.BaseDirectory}");
    }
}
