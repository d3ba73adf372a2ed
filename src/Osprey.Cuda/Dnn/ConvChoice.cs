using System.Globalization;
using Osprey.Cuda.Native;

namespace Osprey.Cuda.Dnn;

/// <summary>Which cuDNN API runs a stored convolution choice.</summary>
internal enum ConvApi
{
    /// <summary>The backend (graph) API: one execution plan from a heuristic mode's result list, with a fused epilogue.</summary>
    Graph = 1,
    /// <summary>The legacy API: a cudnnConvolutionFwdAlgo_t and a math type.</summary>
    Legacy = 2,
}

/// <summary>
/// A convolution algorithm chosen by measurement, in a form an engine file can store and a later process can use
/// without measuring again. Graph: the heuristic mode and the position of the plan in that mode's result list, plus
/// the epilogue steps fused into it; legacy: the algorithm and math type. Valid only for the cuDNN version it was
/// measured with (heuristic lists change between versions), which is part of the text.
/// Text form: <c>cudnn=91900;graph;fused=7;mode=3;index=2;ws=1048576</c> or <c>cudnn=91900;legacy;algo=1;math=1;-;ws=0</c>.
/// </summary>
internal sealed record ConvChoice(long CudnnVersion, ConvApi Api, int Fused, int Mode, int Index, long WorkspaceBytes)
{
    /// <summary>Most candidates one heuristic mode's list may be indexed at (cuDNN offers a few dozen at most).</summary>
    public const int MaxIndex = 4096;

    public override string ToString() => Api == ConvApi.Graph
        ? string.Create(CultureInfo.InvariantCulture, $"cudnn={CudnnVersion};graph;fused={Fused};mode={Mode};index={Index};ws={WorkspaceBytes}")
        : LegacyText(CudnnVersion, (CudnnConvFwdAlgo)Index, (CudnnMathType)Mode, WorkspaceBytes);

    /// <summary>Parses and range-checks the text form; a <see cref="FormatException"/> names the bad part.</summary>
    public static ConvChoice Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split(';');
        if (parts.Length != 6) throw Bad(text, $"expected 6 ';'-separated fields, got {parts.Length}");
        long version = Field(text, parts[0], "cudnn", 0, long.MaxValue);
        ConvChoice c;
        switch (parts[1])
        {
            case "graph":
            {
                int fused = (int)Field(text, parts[2], "fused", 0, 7);
                int mode = (int)Field(text, parts[3], "mode", 0, 3);
                if (!Enum.IsDefined((CudnnHeurMode)mode)) throw Bad(text, $"unknown heuristic mode {mode}");
                int index = (int)Field(text, parts[4], "index", 0, MaxIndex - 1);
                c = new ConvChoice(version, ConvApi.Graph, fused, mode, index, Field(text, parts[5], "ws", 0, long.MaxValue));
                break;
            }
            case "legacy":
            {
                int algo = (int)Field(text, parts[2], "algo", 0, (long)CudnnConvFwdAlgo.WinogradNonfused);
                int math = (int)Field(text, parts[3], "math", 0, (long)CudnnMathType.Fma);
                if (parts[4] != "-") throw Bad(text, $"unexpected field '{parts[4]}' (the legacy form has '-' there)");
                c = new ConvChoice(version, ConvApi.Legacy, 0, math, algo, Field(text, parts[5], "ws", 0, long.MaxValue));
                break;
            }
            default: throw Bad(text, $"unknown API '{parts[1]}' (graph or legacy)");
        }
        return c;
    }

    /// <summary>The legacy form has five meaningful fields; the sixth slot is padding ("-") so both forms split the same way.</summary>
    internal static string LegacyText(long version, CudnnConvFwdAlgo algo, CudnnMathType math, long ws) =>
        string.Create(CultureInfo.InvariantCulture, $"cudnn={version};legacy;algo={(int)algo};math={(int)math};-;ws={ws}");

    private static long Field(string text, string part, string name, long min, long max)
    {
        if (!part.StartsWith(name + "=", StringComparison.Ordinal)) throw Bad(text, $"expected '{name}=...', got '{part}'");
        if (!long.TryParse(part.AsSpan(name.Length + 1), NumberStyles.None, CultureInfo.InvariantCulture, out long v))
            throw Bad(text, $"'{part}' is not a number");
        if (v < min || v > max) throw Bad(text, $"{name} {v} outside [{min}, {max}]");
        return v;
    }

    private static FormatException Bad(string text, string why) => new($"convolution algorithm '{text}': {why}");
}
