using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Osprey.Core;
using Osprey.Cuda.Native;

namespace Osprey.Cuda.Runtime;

/// <summary>
/// Compiles the embedded <c>Kernels/*.cu</c> sources with NVRTC for one GPU architecture and keeps the
/// cubins on disk (OSPREY_CACHE_DIR/kernels), keyed by a hash of the source and options, the architecture
/// and the NVRTC version, so each kernel file is compiled once per machine. Modules load lazily on first
/// use; functions are looked up once and kept. A source that fails to compile throws
/// <see cref="KernelCompileException"/> with NVRTC's log.
/// </summary>
public sealed unsafe class KernelCache : IDisposable
{
    private const string CommonHeader = "common.cuh";
    private readonly CudaContext _context;
    private readonly string _arch;
    private readonly ConcurrentDictionary<string, nint> _modules = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Module, string Kernel), nint> _functions = new();
    private readonly Lock _compileLock = new();

    public KernelCache(CudaContext context, string architecture)
    {
        _context = context;
        _arch = architecture;
    }

    /// <summary>Number of modules compiled by NVRTC (not loaded from the disk cache) in this process.</summary>
    public int Compiled { get; private set; }

    /// <summary>The kernel <paramref name="kernel"/> (an extern "C" name) of the embedded source <paramref name="module"/>.cu.</summary>
    public nint Function(string module, string kernel)
    {
        if (_functions.TryGetValue((module, kernel), out nint f)) return f;
        return LookUp(module, kernel);
    }

    private nint LookUp(string module, string kernel)
    {
        nint mod = _modules.TryGetValue(module, out nint m) ? m : LoadModule(module, EmbeddedSource(module + ".cu"));
        _context.MakeCurrent();
        CuDriver.Check(CuDriver.cuModuleGetFunction(out nint f, mod, kernel), $"cuModuleGetFunction({module}.cu, {kernel})");
        _functions[(module, kernel)] = f;
        return f;
    }

    /// <summary>Compiles (or loads from the cache) a module from source text; used for the embedded kernels and by tests.</summary>
    public nint LoadModule(string name, string source)
    {
        lock (_compileLock)
        {
            if (_modules.TryGetValue(name, out nint existing)) return existing;
            byte[] cubin = Cubin(name, EmbeddedSource(CommonHeader) + "\n#line 1 \"" + name + ".cu\"\n" + source);
            _context.MakeCurrent();
            nint mod;
            fixed (byte* p = cubin) CuDriver.Check(CuDriver.cuModuleLoadData(out mod, p), $"cuModuleLoadData({name}.cu, {_arch})");
            _modules[name] = mod;
            return mod;
        }
    }

    private string[] Options => [$"--gpu-architecture={_arch}", "--std=c++17", "-default-device", "-lineinfo"];

    /// <summary>Modules named detect* reproduce CPU float32 results, so a*b+c must not be contracted into an FMA.</summary>
    private string[] OptionsFor(string name) => name.StartsWith("detect", StringComparison.Ordinal) ? [.. Options, "--fmad=false"] : Options;

    private byte[] Cubin(string name, string source)
    {
        var (major, minor) = Nvrtc.Version();
        string key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(source + "\0" + string.Join(' ', OptionsFor(name)))))[..20].ToLowerInvariant();
        string dir = Path.Combine(OspreyEnvironment.CacheDirectory, "kernels");
        string file = Path.Combine(dir, $"{name}-{_arch}-nvrtc{major}.{minor}-{key}.cubin");
        bool useCache = OspreyEnvironment.KernelCacheEnabled;
        if (useCache && File.Exists(file))
        {
            try { return File.ReadAllBytes(file); }
            catch (IOException) { }
        }
        byte[] cubin = Compile(name, source);
        Compiled++;
        if (useCache) TryWrite(dir, file, cubin);
        return cubin;
    }

    private static void TryWrite(string dir, string file, byte[] bytes)
    {
        try
        {
            Directory.CreateDirectory(dir);
            string tmp = $"{file}.{Environment.ProcessId}.{Environment.CurrentManagedThreadId}.tmp"; // one writer per thread: device threads may compile the same kernel at once
            File.WriteAllBytes(tmp, bytes);
            File.Move(tmp, file, overwrite: true);
        }
        catch (IOException) { }            // an unwritable cache only costs a recompilation next time
        catch (UnauthorizedAccessException) { }
    }

    private byte[] Compile(string name, string source)
    {
        Nvrtc.Check(Nvrtc.nvrtcCreateProgram(out nint prog, source, name + ".cu", 0, 0, 0));
        try
        {
            string[] options = OptionsFor(name);
            var handles = new nint[options.Length];
            try
            {
                for (int i = 0; i < options.Length; i++) handles[i] = Marshal.StringToCoTaskMemUTF8(options[i]);
                int r;
                fixed (nint* opts = handles) r = Nvrtc.nvrtcCompileProgram(prog, options.Length, (byte**)opts);
                if (r == Nvrtc.CompilationError) throw new KernelCompileException(name + ".cu", _arch, Log(prog));
                Nvrtc.Check(r, $"nvrtcCompileProgram({name}.cu, {_arch})");
            }
            finally
            {
                foreach (nint h in handles) Marshal.FreeCoTaskMem(h);
            }
            Nvrtc.Check(Nvrtc.nvrtcGetCUBINSize(prog, out nuint size));
            var cubin = new byte[(int)size];
            fixed (byte* p = cubin) Nvrtc.Check(Nvrtc.nvrtcGetCUBIN(prog, p));
            return cubin;
        }
        finally
        {
            Nvrtc.nvrtcDestroyProgram(ref prog);
        }
    }

    private static string Log(nint prog)
    {
        Nvrtc.Check(Nvrtc.nvrtcGetProgramLogSize(prog, out nuint size));
        var log = new byte[(int)size];
        fixed (byte* p = log) Nvrtc.Check(Nvrtc.nvrtcGetProgramLog(prog, p));
        return Encoding.UTF8.GetString(log).TrimEnd('\0');
    }

    /// <summary>The text of an embedded kernel source (Kernels/NAME).</summary>
    public static string EmbeddedSource(string file)
    {
        var asm = typeof(KernelCache).Assembly;
        using var s = asm.GetManifestResourceStream("Osprey.Cuda.Kernels." + file)
            ?? throw new CudaException($"embedded kernel source Kernels/{file} is missing from {asm.GetName().Name}");
        using var r = new StreamReader(s, Encoding.UTF8);
        return r.ReadToEnd();
    }

    /// <summary>The embedded kernel sources (without the common header).</summary>
    public static IReadOnlyList<string> EmbeddedModules() =>
        typeof(KernelCache).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith("Osprey.Cuda.Kernels.", StringComparison.Ordinal) && n.EndsWith(".cu", StringComparison.Ordinal))
            .Select(n => n["Osprey.Cuda.Kernels.".Length..^3]).Order(StringComparer.Ordinal).ToArray();

    public void Dispose()
    {
        _context.MakeCurrent();
        foreach (nint m in _modules.Values) CuDriver.cuModuleUnload(m);
        _modules.Clear();
        _functions.Clear();
    }
}
