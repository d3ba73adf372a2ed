using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Osprey.Cuda.Native;

/// <summary>
/// The logical library names used in this assembly's <c>[LibraryImport]</c> declarations, and the
/// resolver that maps each one to a file through <see cref="LibraryResolver"/>. Bindings are written as
/// <c>[LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuMemAlloc_v2")]</c>; the first call loads the library.
/// </summary>
public static class NativeLibraries
{
    public const string Cuda = "osprey-cuda";
    public const string Nvrtc = "osprey-nvrtc";
    public const string Cublas = "osprey-cublas";
    public const string CublasLt = "osprey-cublaslt";
    public const string Cudnn = "osprey-cudnn";
    public const string Nvjpeg = "osprey-nvjpeg";
    public const string Nccl = "osprey-nccl";

    /// <summary>Every library Osprey may use, with its sonames (CUDA 13 first) and Python wheel folders.</summary>
    public static IReadOnlyList<LibrarySpec> All { get; } =
    [
        new(Cuda, ["libcuda.so.1", "libcuda.so"], []),
        new(Nvrtc, ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"], ["cu13", "cuda_nvrtc", "cu12"]),
        new(Cublas, ["libcublas.so.13", "libcublas.so.12", "libcublas.so"], ["cu13", "cublas", "cu12"]),
        new(CublasLt, ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"], ["cu13", "cublas", "cu12"]),
        new(Cudnn, ["libcudnn.so.9", "libcudnn.so"], ["cudnn", "cu13", "cu12"]),
        new(Nvjpeg, ["libnvjpeg.so.13", "libnvjpeg.so.12", "libnvjpeg.so"], ["cu13", "nvjpeg", "cu12"]),
        new(Nccl, ["libnccl.so.2", "libnccl.so"], ["nccl", "cu13", "cu12"]),
    ];

    public static LibrarySpec Spec(string name) =>
        All.FirstOrDefault(s => s.Name == name) ?? throw new ArgumentException($"unknown native library '{name}'", nameof(name));

    /// <summary>Loads a library by logical name, throwing with every path tried when it is missing.</summary>
    public static nint Load(string name) => LibraryResolver.Load(Spec(name));

    /// <summary>Routes this assembly's LibraryImports through the resolver. Runs once, when the assembly loads.</summary>
    [ModuleInitializer]
    [SuppressMessage("Usage", "CA2255", Justification = "the DllImport resolver must be in place before any binding is called")]
    internal static void Install() => NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);

    private static nint Resolve(string name, Assembly assembly, DllImportSearchPath? path) =>
        name.StartsWith("osprey-", StringComparison.Ordinal) ? Load(name) : 0;
}
