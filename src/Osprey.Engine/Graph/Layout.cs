using Osprey.Core.Tensors;

namespace Osprey.Engine.Graph;

/// <summary>Stride arithmetic for views: dense checks and composing a view through a dense buffer.</summary>
public static class Layout
{
    /// <summary>Strides equal wherever the dimension has more than one element (size-1 strides never matter).</summary>
    public static bool SameStrides(Shape shape, ReadOnlySpan<long> a, ReadOnlySpan<long> b)
    {
        for (int i = 0; i < shape.Rank; i++)
            if (shape[i] > 1 && a[i] != b[i]) return false;
        return true;
    }

    /// <summary>
    /// A view (shape, strides, offset) over a dense buffer Y whose logical element idx lives at address
    /// inner(idx) = innerOffset + sum idx_j innerStrides_j of another buffer B. Returns the view's strides and offset
    /// directly into B when that map is affine (checked on every element, exactly), else null.
    /// </summary>
    public static (long[] Strides, long Offset)? Compose(Shape viewShape, ReadOnlySpan<long> viewStrides, long viewOffset,
        Shape yShape, ReadOnlySpan<long> yStrides, ReadOnlySpan<long> innerStrides, long innerOffset)
    {
        int r = viewShape.Rank;
        if (viewShape.Numel == 0) return (new long[r], innerOffset);
        var (lo, hi) = Extent(viewShape, viewStrides, viewOffset);
        if (lo < 0 || hi >= yShape.Numel) return null;
        var ys = yStrides.ToArray();
        var yd = yShape.ToArray();
        var inner = innerStrides.ToArray();
        long Map(long p)
        {
            long a = innerOffset;
            for (int j = 0; j < yd.Length; j++)
                if (yd[j] > 1) a += (p / ys[j] % yd[j]) * inner[j];
            return a;
        }
        long f0 = Map(viewOffset);
        var t = new long[r];
        for (int d = 0; d < r; d++) t[d] = viewShape[d] > 1 ? Map(viewOffset + viewStrides[d]) - f0 : 0;
        // exact check over all elements with an odometer
        var idx = new int[r];
        long p = viewOffset, q = f0;
        long total = viewShape.Numel;
        for (long e = 0; e < total; e++)
        {
            if (Map(p) != q) return null;
            for (int d = r - 1; d >= 0; d--)
            {
                if (++idx[d] < viewShape[d]) { p += viewStrides[d]; q += t[d]; break; }
                p -= (long)(idx[d] - 1) * viewStrides[d];
                q -= (long)(idx[d] - 1) * t[d];
                idx[d] = 0;
            }
        }
        return (t, f0);
    }

    /// <summary>Smallest and largest element offsets a view reaches (hi &lt; lo when empty).</summary>
    public static (long Lo, long Hi) Extent(Shape shape, ReadOnlySpan<long> strides, long offset)
    {
        long lo = offset, hi = offset;
        for (int i = 0; i < shape.Rank; i++)
        {
            if (shape[i] == 0) return (0, -1);
            long span = checked((shape[i] - 1) * strides[i]);
            if (span < 0) lo = checked(lo + span); else hi = checked(hi + span);
        }
        return (lo, hi);
    }
}
