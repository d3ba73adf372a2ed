using Osprey.Core;

namespace Osprey.Cuda.Native;

/// <summary>
/// A CUDA library call returned an error status. The message names the library, the status code and
/// its name, the library's description of it, and the call expression that failed.
/// </summary>
public class CudaException : OspreyException
{
    public CudaException() { }
    public CudaException(string message) : base(message) { }
    public CudaException(string message, Exception inner) : base(message, inner) { }

    public CudaException(string library, int code, string codeName, string description, string call)
        : base($"{library} error {code} {codeName}: {description} (in {call})")
    {
        Library = library;
        Code = code;
        CodeName = codeName;
        Call = call;
    }

    /// <summary>"cuda", "nvrtc", "cublas", "cudnn", ...</summary>
    public string Library { get; } = "";

    /// <summary>The numeric status the call returned.</summary>
    public int Code { get; }

    /// <summary>The status's symbolic name, e.g. CUDA_ERROR_OUT_OF_MEMORY.</summary>
    public string CodeName { get; } = "";

    /// <summary>The failing call as written in the source.</summary>
    public string Call { get; } = "";
}

/// <summary>NVRTC could not compile a kernel source; the message carries the compiler's log.</summary>
public sealed class KernelCompileException : CudaException
{
    public KernelCompileException() { }
    public KernelCompileException(string message) : base(message) { }
    public KernelCompileException(string message, Exception inner) : base(message, inner) { }

    public KernelCompileException(string source, string architecture, string log)
        : base($"nvrtc: compiling kernel source '{source}' for {architecture} failed:\n{log}")
    {
        SourceName = source;
        Log = log;
    }

    /// <summary>The kernel source file that failed.</summary>
    public string SourceName { get; } = "";
    public string Log { get; } = "";
}
