using System.Runtime.InteropServices;
using System.Text;
using Osprey.Core;

namespace Osprey.Cuda.Native;

/// <summary>A native library Osprey can use: its logical name and the file names to try, newest first.</summary>
/// <param name="Name">Logical name used in <c>[LibraryImport]</c> (see <see cref="NativeLibraries"/>).</param>
/// <param name="FileNames">Sonames to try in order (CUDA 13 first, then 12).</param>
/// <param name="WheelFolders">Folders under site-packages/nvidia that the Python wheels put it in.</param>
public sealed record LibrarySpec(string Name, string[] FileNames, string[] WheelFolders);

/// <summary>Where a library was found, or every path that was tried and why each failed.</summary>
public sealed record LibraryProbe(string Name, string? Path, IReadOnlyList<string> Tried)
{
    public bool Found => Path is not null;
}

/// <summary>A CUDA library could not be loaded from any of the places searched.</summary>
public sealed class CudaLibraryNotFoundException : OspreyException
{
    public CudaLibraryNotFoundException() { }
    public CudaLibraryNotFoundException(string message) : base(message) { }
    public CudaLibraryNotFoundException(string message, Exception inner) : base(message, inner) { }

    internal static CudaLibraryNotFoundException For(LibraryProbe probe)
    {
        var sb = new StringBuilder();
        sb.Append(probe.Name).Append(": library not found. Tried ").Append(probe.Tried.Count).Append(" paths:");
        foreach (var t in probe.Tried) sb.Append("\n  ").Append(t);
        sb.Append("\nInstall the CUDA toolkit/driver, or set OSPREY_CUDA_PATH to the folder holding the library.");
        return new CudaLibraryNotFoundException(sb.ToString());
    }
}

/// <summary>
/// Finds CUDA libraries: OSPREY_CUDA_PATH first, then CUDA_PATH/CUDA_HOME, CUDA toolkit folders
/// (/usr/local/cuda*, newest first), the system library folders and LD_LIBRARY_PATH, the NVIDIA Python
/// wheels (site-packages/nvidia/...), and finally the system loader's own search by soname. Works with
/// CUDA 12 and 13 sonames. Handles are loaded once per process and never freed.
/// </summary>
public static class LibraryResolver
{
    private static readonly Lock s_lock = new();
    private static readonly Dictionary<string, (nint Handle, LibraryProbe Probe)> s_loaded = new(StringComparer.Ordinal);

    /// <summary>Loads a library or throws <see cref="CudaLibraryNotFoundException"/> listing every path tried.</summary>
    public static nint Load(LibrarySpec spec)
    {
        var (handle, probe) = TryLoad(spec);
        if (handle == 0) throw CudaLibraryNotFoundException.For(probe);
        return handle;
    }

    /// <summary>Loads a library if it can be found; the probe says where, or what was tried.</summary>
    public static (nint Handle, LibraryProbe Probe) TryLoad(LibrarySpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        lock (s_lock)
        {
            if (s_loaded.TryGetValue(spec.Name, out var hit)) return hit;
            var result = Search(spec);
            if (result.Handle != 0) s_loaded[spec.Name] = result;
            return result;
        }
    }

    private static (nint Handle, LibraryProbe Probe) Search(LibrarySpec spec)
    {
        var tried = new List<string>();
        var dirs = SearchDirectories(spec);
        foreach (string file in spec.FileNames)
        {
            foreach (string dir in dirs)
            {
                string path = System.IO.Path.Combine(dir, file);
                if (!File.Exists(path)) { tried.Add($"{path} (no such file)"); continue; }
                PreloadCompanions(spec, dir);
                if (NativeLibrary.TryLoad(path, out nint h)) return (h, new LibraryProbe(spec.Name, path, tried));
                tried.Add($"{path} (exists but failed to load: {LoaderError()})");
            }
            // the system loader's own search (ld.so.cache, RPATH, LD_LIBRARY_PATH)
            if (NativeLibrary.TryLoad(file, out nint sys))
                return (sys, new LibraryProbe(spec.Name, $"{file} (system loader)", tried));
            tried.Add($"{file} via the system loader (not found)");
        }
        return (0, new LibraryProbe(spec.Name, null, tried));
    }

    /// <summary>nvrtc loads its builtins library by soname at run time: load it from the same folder first.</summary>
    private static void PreloadCompanions(LibrarySpec spec, string dir)
    {
        if (spec.Name != NativeLibraries.Nvrtc) return;
        try
        {
            foreach (string f in Directory.EnumerateFiles(dir, "libnvrtc-builtins.so*"))
                NativeLibrary.TryLoad(f, out _);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    private static string LoaderError() => Marshal.GetLastPInvokeErrorMessage();

    /// <summary>The folders searched for one library, in order, without duplicates.</summary>
    public static IReadOnlyList<string> SearchDirectories(LibrarySpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var dirs = new List<string>();
        void AddRoot(string root)
        {
            dirs.Add(root);
            dirs.Add(System.IO.Path.Combine(root, "lib64"));
            dirs.Add(System.IO.Path.Combine(root, "lib"));
            dirs.Add(System.IO.Path.Combine(root, "targets", "x86_64-linux", "lib"));
        }
        foreach (string p in OspreyEnvironment.CudaPaths) AddRoot(p);
        foreach (string p in OspreyEnvironment.CudaToolkitRoots) AddRoot(p);
        AddRoot("/usr/local/cuda");
        foreach (string root in Glob("/usr/local", "cuda-*").OrderByDescending(VersionKey)) AddRoot(root);
        dirs.AddRange(["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/wsl/lib"]);
        dirs.AddRange(OspreyEnvironment.LibraryPath);
        foreach (string site in SitePackages())
            foreach (string w in spec.WheelFolders)
                dirs.Add(System.IO.Path.Combine(site, "nvidia", w, "lib"));
        return dirs.Distinct(StringComparer.Ordinal).Where(Directory.Exists).ToArray();
    }

    /// <summary>site-packages folders of the usual Python installs (virtual environments under /opt, the user's, the system's).</summary>
    private static IEnumerable<string> SitePackages()
    {
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        string[] roots = ["/opt/torch/.venv/lib", "/opt/conda/lib", "/usr/local/lib", "/usr/lib", System.IO.Path.Combine(home, ".local", "lib")];
        foreach (string r in roots)
            foreach (string py in Glob(r, "python3*").OrderByDescending(VersionKey))
            {
                yield return System.IO.Path.Combine(py, "site-packages");
                yield return System.IO.Path.Combine(py, "dist-packages");
            }
        foreach (string venv in Glob("/opt", "*"))
            foreach (string py in Glob(System.IO.Path.Combine(venv, ".venv", "lib"), "python3*"))
                yield return System.IO.Path.Combine(py, "site-packages");
    }

    private static IEnumerable<string> Glob(string dir, string pattern)
    {
        try { return Directory.Exists(dir) ? Directory.GetDirectories(dir, pattern) : []; }
        catch (IOException) { return []; }
        catch (UnauthorizedAccessException) { return []; }
    }

    /// <summary>Sorts "cuda-12.4" / "python3.12" by their numbers, not as text.</summary>
    private static long VersionKey(string path)
    {
        long key = 0;
        int parts = 0;
        foreach (string s in System.IO.Path.GetFileName(path).Split('-', '.', 'n'))
            if (int.TryParse(s, out int v) && parts++ < 3) key = key * 1000 + v;
        for (; parts < 3; parts++) key *= 1000;
        return key;
    }
}
