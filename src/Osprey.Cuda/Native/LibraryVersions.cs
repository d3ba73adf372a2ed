using System.Runtime.InteropServices;

namespace Osprey.Cuda.Native;

/// <summary>The version queries of each CUDA library, for `osprey info`. Call only after the library was found.</summary>
internal static partial class LibraryVersions
{
    [LibraryImport(NativeLibraries.Cublas)] private static partial int cublasGetProperty(int type, out int value);
    [LibraryImport(NativeLibraries.CublasLt)] private static partial nuint cublasLtGetVersion();
    [LibraryImport(NativeLibraries.Cudnn)] private static partial nuint cudnnGetVersion();
    [LibraryImport(NativeLibraries.Nvjpeg)] private static partial int nvjpegGetProperty(int type, out int value);
    [LibraryImport(NativeLibraries.Nccl)] private static partial int ncclGetVersion(out int version);

    /// <summary>The library's own version text, or why it could not be read.</summary>
    public static string Of(string name)
    {
        try
        {
            switch (name)
            {
                case NativeLibraries.Cuda:
                    CuDriver.Check(CuDriver.cuDriverGetVersion(out int d));
                    return $"CUDA driver API {d / 1000}.{d % 1000 / 10}";
                case NativeLibraries.Nvrtc:
                    var (maj, min) = Nvrtc.Version();
                    return $"{maj}.{min}";
                case NativeLibraries.Cublas:
                    return cublasGetProperty(0, out int a) == 0 && cublasGetProperty(1, out int b) == 0 && cublasGetProperty(2, out int c) == 0 ? $"{a}.{b}.{c}" : "version query failed";
                case NativeLibraries.CublasLt:
                    nuint lt = cublasLtGetVersion();
                    return $"{lt / 10000}.{lt / 100 % 100}.{lt % 100}";
                case NativeLibraries.Cudnn:
                    nuint v = cudnnGetVersion();
                    return v >= 90000 ? $"{v / 10000}.{v / 100 % 100}.{v % 100}" : $"{v / 1000}.{v / 100 % 10}.{v % 100}";
                case NativeLibraries.Nvjpeg:
                    return nvjpegGetProperty(0, out int j0) == 0 && nvjpegGetProperty(1, out int j1) == 0 && nvjpegGetProperty(2, out int j2) == 0 ? $"{j0}.{j1}.{j2}" : "version query failed";
                case NativeLibraries.Nccl:
                    if (ncclGetVersion(out int n) != 0) return "version query failed";
                    return n >= 10000 ? $"{n / 10000}.{n / 100 % 100}.{n % 100}" : $"{n / 1000}.{n / 100 % 10}.{n % 100}";
                default:
                    return "unknown library";
            }
        }
        catch (Exception e) when (e is CudaException or EntryPointNotFoundException or DllNotFoundException)
        {
            return $"version unknown ({e.Message})";
        }
    }
}
