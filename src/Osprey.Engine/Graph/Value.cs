using Osprey.Core.Tensors;

namespace Osprey.Engine.Graph;

public enum ValueKind
{
    /// <summary>Fed by the caller (an image batch).</summary>
    Input,
    /// <summary>Known at build time (weights, folded results); its bytes live in <see cref="Value.Data"/>.</summary>
    Constant,
    /// <summary>Produced by a node at run time.</summary>
    Activation,
}

/// <summary>
/// A tensor of the graph: logical shape, dtype and memory format. A value produced by a <see cref="OpKind.View"/>
/// node is an alias: it owns no memory and addresses its producer's input buffer with the view's strides.
/// </summary>
public sealed class Value
{
    internal Value(int id, ValueKind kind, Shape shape, DType dtype, MemoryFormat format, string name)
    {
        Id = id;
        Kind = kind;
        Shape = shape;
        DType = dtype;
        Format = format;
        Name = name;
    }

    public int Id { get; internal set; }
    public ValueKind Kind { get; internal set; }
    public Shape Shape { get; internal set; }
    public DType DType { get; internal set; }

    /// <summary>Dense layout of a buffer value (ChannelsLast only for 4-D). Meaningless for aliases.</summary>
    public MemoryFormat Format { get; internal set; }

    public string Name { get; set; }

    /// <summary>The node computing this value (null for inputs and constants).</summary>
    public Node? Producer { get; internal set; }

    /// <summary>Row-major bytes of a constant in its <see cref="Format"/>.</summary>
    public byte[]? Data { get; internal set; }

    public bool IsAlias => Producer?.Kind == OpKind.View;

    /// <summary>The value owning the memory: itself, or the buffer a view aliases.</summary>
    public Value Buffer => IsAlias ? Producer!.Inputs[0] : this;

    public long Numel => Shape.Numel;
    public long Bytes => checked(Shape.Numel * DType.SizeOf());

    /// <summary>Strides (elements) this value is addressed with: a buffer's dense strides, or the view's strides into its buffer.</summary>
    public long[] Strides => IsAlias ? ((ViewAttrs)Producer!.Attrs).Strides : DenseStrides(Shape, Format);

    /// <summary>Offset (elements) into <see cref="Buffer"/>.</summary>
    public long Offset => IsAlias ? ((ViewAttrs)Producer!.Attrs).Offset : 0;

    /// <summary>The dense format this value's strides form (any value: aliases too), or null if they form none.</summary>
    public MemoryFormat? DenseFormat
    {
        get
        {
            if (!IsAlias) return Format;
            if (Layout.SameStrides(Shape, Strides, DenseStrides(Shape, MemoryFormat.Contiguous))) return MemoryFormat.Contiguous;
            if (Shape.Rank == 4 && Layout.SameStrides(Shape, Strides, DenseStrides(Shape, MemoryFormat.ChannelsLast))) return MemoryFormat.ChannelsLast;
            return null;
        }
    }

    public static long[] DenseStrides(Shape shape, MemoryFormat format) =>
        format == MemoryFormat.ChannelsLast && shape.Rank == 4 ? shape.ChannelsLastStrides() : shape.ContiguousStrides();

    public override string ToString() => $"%{Id}";
}
