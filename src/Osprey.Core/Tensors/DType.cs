namespace Osprey.Core.Tensors;

/// <summary>Element types a tensor can hold.</summary>
public enum DType
{
    Float32,
    Float16,
    BFloat16,
    Int8,
    UInt8,
    Int32,
    Int64,
    Bool,
}

public static class DTypeExtensions
{
    public static int SizeOf(this DType t) => t switch
    {
        DType.Float32 or DType.Int32 => 4,
        DType.Float16 or DType.BFloat16 => 2,
        DType.Int8 or DType.UInt8 or DType.Bool => 1,
        DType.Int64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown dtype"),
    };

    public static bool IsFloating(this DType t) => t is DType.Float32 or DType.Float16 or DType.BFloat16;

    public static bool IsInteger(this DType t) => t is DType.Int8 or DType.UInt8 or DType.Int32 or DType.Int64;

    /// <summary>Short lower-case name as PyTorch prints it (float32, int64...).</summary>
    public static string Name(this DType t) => t.ToString().ToLowerInvariant();

    /// <summary>The dtype that a CLR element type maps to.</summary>
    public static DType Of<T>() where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return DType.Float32;
        if (typeof(T) == typeof(Half)) return DType.Float16;
        if (typeof(T) == typeof(BFloat16)) return DType.BFloat16;
        if (typeof(T) == typeof(sbyte)) return DType.Int8;
        if (typeof(T) == typeof(byte)) return DType.UInt8;
        if (typeof(T) == typeof(int)) return DType.Int32;
        if (typeof(T) == typeof(long)) return DType.Int64;
        if (typeof(T) == typeof(bool)) return DType.Bool;
        throw new NotSupportedException($"no tensor dtype for CLR type {typeof(T).Name}");
    }
}
