using System.Collections;
using System.Text;

namespace Osprey.Core.Tensors;

/// <summary>An immutable list of dimension sizes.</summary>
public readonly struct Shape : IEquatable<Shape>, IReadOnlyList<int>
{
    private readonly int[]? _dims;

    public Shape(params int[] dims)
    {
        ArgumentNullException.ThrowIfNull(dims);
        foreach (int d in dims)
            if (d < 0) throw new ArgumentException($"negative dimension in shape {Format(dims)}", nameof(dims));
        _dims = (int[])dims.Clone();
    }

    public static Shape Scalar => new([]);

    public int Rank => _dims?.Length ?? 0;
    public int Count => Rank;
    public int this[int axis] => Dims[NormalizeAxis(axis, Rank, "shape")];
    public ReadOnlySpan<int> Span => Dims;
    private int[] Dims => _dims ?? [];

    /// <summary>Number of elements (1 for a scalar).</summary>
    public long Numel
    {
        get
        {
            long n = 1;
            foreach (int d in Dims) n = checked(n * d);
            return n;
        }
    }

    public int[] ToArray() => (int[])Dims.Clone();

    /// <summary>Row-major strides in elements.</summary>
    public long[] ContiguousStrides()
    {
        var s = new long[Rank];
        long acc = 1;
        for (int i = Rank - 1; i >= 0; i--) { s[i] = acc; acc *= Math.Max(Dims[i], 1); }
        return s;
    }

    /// <summary>Strides for a 4-D N,C,H,W shape stored as NHWC.</summary>
    public long[] ChannelsLastStrides()
    {
        if (Rank != 4) throw new OpArgumentException($"channels_last needs a 4-D shape, got {this}");
        long c = Math.Max(Dims[1], 1), h = Math.Max(Dims[2], 1), w = Math.Max(Dims[3], 1);
        return [h * w * c, 1, w * c, c];
    }

    /// <summary>Numpy broadcasting of two shapes; throws naming the op if they do not broadcast.</summary>
    public static Shape Broadcast(Shape a, Shape b, string op)
    {
        int rank = Math.Max(a.Rank, b.Rank);
        var r = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i < rank - a.Rank ? 1 : a.Dims[i - (rank - a.Rank)];
            int db = i < rank - b.Rank ? 1 : b.Dims[i - (rank - b.Rank)];
            if (da != db && da != 1 && db != 1)
                OpArgumentException.Throw(op, $"shapes {a} and {b} do not broadcast (dimension {i}: {da} vs {db})");
            r[i] = da == 1 ? db : da;
        }
        return new Shape(r);
    }

    /// <summary>Maps a possibly negative axis into [0, rank).</summary>
    public static int NormalizeAxis(int axis, int rank, string op)
    {
        int a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank) OpArgumentException.Throw(op, $"axis {axis} is out of range for rank {rank}");
        return a;
    }

    public Shape With(int axis, int size)
    {
        var d = ToArray();
        d[NormalizeAxis(axis, Rank, "shape")] = size;
        return new Shape(d);
    }

    public bool Equals(Shape other) => Dims.AsSpan().SequenceEqual(other.Dims);
    public override bool Equals(object? obj) => obj is Shape s && Equals(s);
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (int d in Dims) h.Add(d);
        return h.ToHashCode();
    }
    public static bool operator ==(Shape a, Shape b) => a.Equals(b);
    public static bool operator !=(Shape a, Shape b) => !a.Equals(b);
    public static implicit operator Shape(int[] dims) => new(dims);

    public override string ToString() => Format(Dims);

    private static string Format(int[] dims)
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < dims.Length; i++) { if (i > 0) sb.Append(", "); sb.Append(dims[i]); }
        return sb.Append(']').ToString();
    }

    public IEnumerator<int> GetEnumerator() => ((IEnumerable<int>)Dims).GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
