namespace Osprey.Detection.Training.Matching;

/// <summary>How anchors are matched to ground-truth boxes.</summary>
/// <param name="High">IoU at or above which an anchor is foreground.</param>
/// <param name="Low">IoU below which an anchor is background; between the two it is ignored.</param>
/// <param name="AllowLowQualityMatches">torchvision's RetinaNet rule: every anchor whose IoU with some ground truth equals that
/// ground truth's best IoU keeps its argmax match even below <see cref="High"/>.</param>
/// <param name="ForceBestAnchor">SSD's rule (torchvision's SSDMatcher): each ground truth's best anchor is assigned to it.</param>
public sealed record MatcherOptions(float High, float Low, bool AllowLowQualityMatches = false, bool ForceBestAnchor = false)
{
    /// <summary>torchvision RetinaNet: Matcher(0.5, 0.4, allow_low_quality_matches=True).</summary>
    public static MatcherOptions RetinaNet { get; } = new(0.5f, 0.4f, AllowLowQualityMatches: true);

    /// <summary>ODTK: foreground at IoU 0.5, background below 0.4, the rest ignored; no low-quality matches.</summary>
    public static MatcherOptions Odtk { get; } = new(0.5f, 0.4f);

    /// <summary>torchvision SSD: SSDMatcher(0.5), one threshold plus best-anchor forcing.</summary>
    public static MatcherOptions Ssd { get; } = new(0.5f, 0.5f, ForceBestAnchor: true);
}

/// <summary>
/// torchvision's <c>det_utils.Matcher</c> (and <c>SSDMatcher</c>) over a [G, A] IoU matrix: each anchor gets the index of its
/// best ground truth (first on ties), <see cref="Background"/> below the low threshold, <see cref="Ignore"/> between them.
/// </summary>
public static class Matcher
{
    public const int Background = -1;
    public const int Ignore = -2;

    /// <summary>Matches <paramref name="anchors"/> anchors to <paramref name="gts"/> ground truths given their IoU matrix
    /// (row per ground truth). With no ground truth every anchor is background (torchvision's loss code does the same).</summary>
    public static void Match(ReadOnlySpan<float> iou, int gts, int anchors, MatcherOptions options, Span<int> matches)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (gts < 0 || anchors < 0 || iou.Length != (long)gts * anchors || matches.Length != anchors)
            throw new ArgumentException($"matcher: IoU holds {iou.Length} values and output {matches.Length} for {gts} ground truths x {anchors} anchors");
        if (options.Low > options.High)
            throw new ArgumentException($"matcher: low threshold {options.Low} above high threshold {options.High}");
        if (gts == 0) { matches.Fill(Background); return; }
        if (anchors == 0) return;
        float[] best = new float[anchors];
        int[] all = new int[anchors];
        for (int a = 0; a < anchors; a++)
        {
            float v = iou[a];
            int g = 0;
            for (int k = 1; k < gts; k++)
            {
                float q = iou[k * anchors + a];
                if (q > v || float.IsNaN(q) && !float.IsNaN(v)) { v = q; g = k; }
            }
            best[a] = v;
            all[a] = g;
            matches[a] = v < options.Low ? Background : v < options.High ? Ignore : g;
        }
        if (options.AllowLowQualityMatches)
            for (int k = 0; k < gts; k++)
            {
                var row = iou.Slice(k * anchors, anchors);
                float top = Max(row);
                for (int a = 0; a < anchors; a++)
                    if (row[a] == top) matches[a] = all[a];
            }
        if (options.ForceBestAnchor)
            for (int k = 0; k < gts; k++) matches[ArgMax(iou.Slice(k * anchors, anchors))] = k;
    }

    public static int[] Match(ReadOnlySpan<float> iou, int gts, int anchors, MatcherOptions options)
    {
        var m = new int[anchors];
        Match(iou, gts, anchors, options, m);
        return m;
    }

    /// <summary>Matches anchors to ground-truth boxes (both x1, y1, x2, y2) through <see cref="BoxIou"/>.</summary>
    public static int[] MatchBoxes(ReadOnlySpan<float> gtBoxes, ReadOnlySpan<float> anchors, MatcherOptions options)
    {
        int g = gtBoxes.Length / 4, a = anchors.Length / 4;
        if (g == 0) { var m = new int[a]; m.AsSpan().Fill(Background); return m; }
        return Match(BoxIou.Matrix(gtBoxes, anchors), g, a, options);
    }

    private static float Max(ReadOnlySpan<float> row)
    {
        float m = row[0];
        for (int i = 1; i < row.Length; i++) if (row[i] > m || float.IsNaN(row[i])) m = row[i];
        return m;
    }

    private static int ArgMax(ReadOnlySpan<float> row)
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++) if (row[i] > row[best] || float.IsNaN(row[i]) && !float.IsNaN(row[best])) best = i;
        return best;
    }
}
