using System.Reflection;
using System.Runtime.InteropServices;

namespace Osprey.Vision.Codecs;

/// <summary>
/// The libturbojpeg calls Osprey uses (TurboJPEG 2.x API). The library is resolved by name on first use;
/// when it cannot be loaded the error lists every name tried.
/// </summary>
internal static partial class TurboJpegNative
{
    private const string Library = "turbojpeg";

    public const int PixelFormatRgb = 0;   // TJPF_RGB
    public const int ColorspaceCmyk = 3;   // TJCS_CMYK
    public const int ColorspaceYcck = 4;   // TJCS_YCCK
    public const int ErrorWarning = 0;     // TJERR_WARNING

    private static readonly string[] s_candidates = OperatingSystem.IsWindows()
        ? ["turbojpeg.dll", "libturbojpeg.dll", "turbojpeg"]
        : OperatingSystem.IsMacOS()
            ? ["libturbojpeg.0.dylib", "libturbojpeg.dylib", "/opt/homebrew/opt/jpeg-turbo/lib/libturbojpeg.dylib", "/usr/local/opt/jpeg-turbo/lib/libturbojpeg.dylib"]
            : ["libturbojpeg.so.0", "libturbojpeg.so", "/usr/lib/x86_64-linux-gnu/libturbojpeg.so.0", "/usr/lib/aarch64-linux-gnu/libturbojpeg.so.0", "/opt/libjpeg-turbo/lib64/libturbojpeg.so"];

    static TurboJpegNative()
    {
        NativeLibrary.SetDllImportResolver(typeof(TurboJpegNative).Assembly, Resolve);
    }

    private static nint Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (name != Library) return 0;
        foreach (string c in s_candidates)
            if (NativeLibrary.TryLoad(c, assembly, path, out nint h)) return h;
        throw new DllNotFoundException(
            $"libturbojpeg (TurboJPEG, from libjpeg-turbo) is needed to decode JPEG files and was not found; tried: {string.Join(", ", s_candidates)}. " +
            "Install it (Debian/Ubuntu: apt install libturbojpeg0; macOS: brew install jpeg-turbo).");
    }

    /// <summary>Forces the resolver to be installed before the first native call.</summary>
    public static void EnsureResolver() { }

    [LibraryImport(Library)]
    public static partial nint tjInitDecompress();

    [LibraryImport(Library)]
    public static unsafe partial int tjDecompressHeader3(nint handle, byte* jpegBuf, CULong jpegSize,
        out int width, out int height, out int jpegSubsamp, out int jpegColorspace);

    [LibraryImport(Library)]
    public static unsafe partial int tjDecompress2(nint handle, byte* jpegBuf, CULong jpegSize, byte* dstBuf,
        int width, int pitch, int height, int pixelFormat, int flags);

    [LibraryImport(Library)]
    public static partial nint tjGetErrorStr2(nint handle);

    [LibraryImport(Library)]
    public static partial int tjGetErrorCode(nint handle);

    [LibraryImport(Library)]
    public static partial int tjDestroy(nint handle);
}

/// <summary>A TurboJPEG decompressor handle.</summary>
internal sealed class TurboJpegHandle : SafeHandle
{
    public TurboJpegHandle() : base(0, ownsHandle: true)
    {
        TurboJpegNative.EnsureResolver();
        SetHandle(TurboJpegNative.tjInitDecompress());
        if (IsInvalid) throw new ImageDecodeException("libturbojpeg: tjInitDecompress failed");
    }

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle() => TurboJpegNative.tjDestroy(handle) == 0;

    public string LastError() => Marshal.PtrToStringUTF8(TurboJpegNative.tjGetErrorStr2(handle)) ?? "unknown error";
}
