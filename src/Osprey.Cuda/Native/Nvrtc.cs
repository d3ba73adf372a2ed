using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Osprey.Cuda.Native;

/// <summary>NVRTC (run-time CUDA C++ compiler) bindings. Status 0 is success; every call goes through <see cref="Check"/>.</summary>
public static unsafe partial class Nvrtc
{
    private const string Lib = NativeLibraries.Nvrtc;

    public const int CompilationError = 6;

    [LibraryImport(Lib)] public static partial nint nvrtcGetErrorString(int result);
    [LibraryImport(Lib)] public static partial int nvrtcVersion(out int major, out int minor);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int nvrtcCreateProgram(out nint program, string source, string name, int numHeaders, nint headers, nint includeNames);
    [LibraryImport(Lib)] public static partial int nvrtcDestroyProgram(ref nint program);
    [LibraryImport(Lib)] public static partial int nvrtcCompileProgram(nint program, int numOptions, byte** options);
    [LibraryImport(Lib)] public static partial int nvrtcGetCUBINSize(nint program, out nuint size);
    [LibraryImport(Lib)] public static partial int nvrtcGetCUBIN(nint program, byte* cubin);
    [LibraryImport(Lib)] public static partial int nvrtcGetProgramLogSize(nint program, out nuint size);
    [LibraryImport(Lib)] public static partial int nvrtcGetProgramLog(nint program, byte* log);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] public static partial int nvrtcAddNameExpression(nint program, string expression);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] public static partial int nvrtcGetLoweredName(nint program, string expression, out nint lowered);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Check(int result, [CallerArgumentExpression(nameof(result))] string call = "")
    {
        if (result != 0) Throw(result, call);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Throw(int result, string call)
    {
        string text = Marshal.PtrToStringUTF8(nvrtcGetErrorString(result)) ?? "unknown";
        throw new CudaException("nvrtc", result, text, text, call);
    }

    /// <summary>NVRTC's version, e.g. (13, 0).</summary>
    public static (int Major, int Minor) Version()
    {
        Check(nvrtcVersion(out int major, out int minor));
        return (major, minor);
    }
}
