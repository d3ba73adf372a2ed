namespace Osprey.Detection.Evaluation;

/// <summary>Per-(image, category) results of COCOeval.evaluateImg for every area range and IoU threshold: the top 100
/// detections of each cell (score order), and per detection a state TP / FP / ignored.</summary>
internal sealed class CocoMatches
{
    public const byte FalsePositive = 0, TruePositive = 1, Ignored = 2;

    /// <summary>[K*I + 1]: kept detections of cell (k, i) are positions CellDtStart[c]..CellDtStart[c+1].</summary>
    public required int[] CellDtStart { get; init; }
    /// <summary>[D]: scores of the kept detections, highest first within a cell.</summary>
    public required double[] Scores { get; init; }
    /// <summary>[A, T, D]: state of each kept detection per area range and IoU threshold.</summary>
    public required byte[] State { get; init; }
    /// <summary>[K, A]: ground truths that are not ignored (COCOeval's npig).</summary>
    public required long[] NotIgnored { get; init; }
    public int TotalDetections => Scores.Length;
}

/// <summary>COCOeval.computeIoU + evaluateImg for bounding boxes, one category per task.</summary>
internal static class CocoMatcher
{
    public static CocoMatches Run(CocoEvaluator ev, CocoAnnotation[] gts, CocoDetection[] dts, int[] dtCellStart, int[] dtOrder,
        ParallelOptions parallel)
    {
        int K = ev.CategoryIds.Length, I = ev.ImageIds.Length, maxDet = CocoEvalParams.MaxDetections[^1];
        var cellStart = new int[K * I + 1];
        for (int c = 0; c < K * I; c++) cellStart[c + 1] = cellStart[c] + Math.Min(dtCellStart[c + 1] - dtCellStart[c], maxDet);
        int total = cellStart[K * I];
        var m = new CocoMatches
        {
            CellDtStart = cellStart,
            Scores = new double[total],
            State = new byte[CocoEvalParams.A * CocoEvalParams.T * total],
            NotIgnored = new long[K * CocoEvalParams.A],
        };
        // Work is split into runs of cells of about equal cost (detections + ground truths + cells / 16), not whole
        // categories, so one large category (people in COCO) does not serialise the run.
        int cells = K * I, chunks = Math.Min(cells, Math.Max(1, Environment.ProcessorCount * 16));
        long Cost(int c) => (long)dtCellStart[c] + ev.GtCellStart[c] + c / 16;
        var bounds = new int[chunks + 1];
        long totalCost = Cost(cells);
        for (int j = 1; j < chunks; j++)
        {
            long target = totalCost * j / chunks;
            int lo = bounds[j - 1], hi = cells;
            while (lo < hi) { int mid = lo + (hi - lo) / 2; if (Cost(mid) < target) lo = mid + 1; else hi = mid; }
            bounds[j] = lo;
        }
        bounds[chunks] = cells;
        Parallel.For(0, chunks, parallel, () => new Scratch(), (chunk, _, s) =>
        {
            int c0 = bounds[chunk], c1 = bounds[chunk + 1];
            for (int c = c0; c < c1; c++)
            {
                MatchCell(m, c, c / I, gts, ev.GtOrder.AsSpan(ev.GtCellStart[c], ev.GtCellStart[c + 1] - ev.GtCellStart[c]),
                    dts, dtOrder.AsSpan(dtCellStart[c], dtCellStart[c + 1] - dtCellStart[c]), s);
            }
            return s;
        }, _ => { });
        return m;
    }

    /// <summary>Per-thread buffers, grown on demand.</summary>
    private sealed class Scratch
    {
        public RankedDetection[] Ranked = new RankedDetection[128];
        public double[] Iou = new double[1024];
        public double[] DtArea = new double[128];
        public int[] GtPerm = new int[64];
        public bool[] GtIgnore = new bool[64];
        public bool[] GtCrowd = new bool[64];
        public bool[] GtMatched = new bool[64];

        public void Ensure(int d, int g)
        {
            if (Ranked.Length < d) { Ranked = new RankedDetection[d]; DtArea = new double[d]; }
            if (GtPerm.Length < g) { GtPerm = new int[g]; GtIgnore = new bool[g]; GtCrowd = new bool[g]; GtMatched = new bool[g]; }
            if (Iou.Length < (long)d * g) Iou = new double[d * g];
        }
    }

    private static void MatchCell(CocoMatches m, int c, int k, CocoAnnotation[] gts, ReadOnlySpan<int> gtIdx,
        CocoDetection[] dts, ReadOnlySpan<int> dtIdx, Scratch s)
    {
        int G = gtIdx.Length, nAll = dtIdx.Length;
        if (G == 0 && nAll == 0) return;
        s.Ensure(nAll, G);
        // Detections by score, highest first; ties keep their given order (numpy's stable mergesort on -score).
        var ranked = s.Ranked.AsSpan(0, nAll);
        for (int j = 0; j < nAll; j++) ranked[j] = new RankedDetection(dts[dtIdx[j]].Score, j);
        ranked.Sort(default(RankedDetection.Comparer));
        int pos = m.CellDtStart[c], D = m.CellDtStart[c + 1] - pos;
        var area = s.DtArea.AsSpan(0, D);
        for (int d = 0; d < D; d++)
        {
            ref readonly var det = ref dts[dtIdx[ranked[d].Order]];
            m.Scores[pos + d] = det.Score;
            area[d] = det.W * det.H;
        }
        // IoU[d, g] in the ground truths' given order (maskApi bbIou: a crowd's union is the detection's area).
        var iou = s.Iou.AsSpan(0, D * G);
        for (int g = 0; g < G; g++) s.GtCrowd[g] = gts[gtIdx[g]].IsCrowd;
        for (int d = 0; d < D; d++)
        {
            ref readonly var dt = ref dts[dtIdx[ranked[d].Order]];
            for (int g = 0; g < G; g++) iou[d * G + g] = BoxIou(dt, gts[gtIdx[g]]);
        }
        int T = CocoEvalParams.T, total = m.TotalDetections;
        var thresholds = CocoEvalParams.IouThresholds;
        var perm = s.GtPerm.AsSpan(0, G);
        var ignore = s.GtIgnore.AsSpan(0, G);       // in permuted order
        var crowd = s.GtCrowd.AsSpan(0, G);         // in given order
        var matched = s.GtMatched.AsSpan(0, G);     // in permuted order
        for (int a = 0; a < CocoEvalParams.A; a++)
        {
            double lo = CocoEvalParams.AreaRangeLow[a], hi = CocoEvalParams.AreaRangeHigh[a];
            // Ground truths that are not ignored first, then the ignored ones; each group in given order.
            int n = 0;
            for (int g = 0; g < G; g++) if (!GtIgnored(gts[gtIdx[g]], lo, hi)) perm[n++] = g;
            if (n > 0) Interlocked.Add(ref m.NotIgnored[k * CocoEvalParams.A + a], n);
            for (int g = 0; g < G; g++) if (GtIgnored(gts[gtIdx[g]], lo, hi)) perm[n++] = g;
            for (int p = 0; p < G; p++) ignore[p] = GtIgnored(gts[gtIdx[perm[p]]], lo, hi);
            for (int t = 0; t < T; t++)
            {
                var state = m.State.AsSpan((a * T + t) * total + pos, D);
                matched.Clear();
                double thr = Math.Min(thresholds[t], 1 - 1e-10);
                for (int d = 0; d < D; d++)
                {
                    bool outside = area[d] < lo || area[d] > hi;
                    int best = G == 0 ? -1 : BestMatch(iou.Slice(d * G, G), perm, ignore, crowd, matched, thr);
                    if (best < 0) { state[d] = outside ? CocoMatches.Ignored : CocoMatches.FalsePositive; continue; }
                    matched[best] = true;
                    // COCOeval stores the matched ground truth's id and tests it for != 0: an annotation id of 0 counts as unmatched.
                    bool idNonZero = gts[gtIdx[perm[best]]].Id != 0;
                    bool ig = ignore[best] || (!idNonZero && outside);
                    state[d] = ig ? CocoMatches.Ignored : idNonZero ? CocoMatches.TruePositive : CocoMatches.FalsePositive;
                }
            }
        }
    }

    /// <summary>evaluateImg's inner loop over ground truths (in permuted order); returns the permuted index or -1.</summary>
    private static int BestMatch(ReadOnlySpan<double> iouRow, ReadOnlySpan<int> perm, ReadOnlySpan<bool> ignore,
        ReadOnlySpan<bool> crowd, ReadOnlySpan<bool> matched, double thr)
    {
        double best = thr;
        int m = -1;
        for (int p = 0; p < perm.Length; p++)
        {
            if (matched[p] && !crowd[perm[p]]) continue;
            if (m > -1 && !ignore[m] && ignore[p]) break;
            double v = iouRow[perm[p]];
            if (v < best) continue;
            best = v;
            m = p;
        }
        return m;
    }

    private static bool GtIgnored(in CocoAnnotation g, double lo, double hi) => g.IsCrowd || g.Area < lo || g.Area > hi;

    /// <summary>maskApi.c bbIou for one pair, operation for operation.</summary>
    internal static double BoxIou(in CocoDetection d, in CocoAnnotation g)
    {
        double w = Math.Min(d.W + d.X, g.W + g.X) - Math.Max(d.X, g.X);
        if (w <= 0) return 0;
        double h = Math.Min(d.H + d.Y, g.H + g.Y) - Math.Max(d.Y, g.Y);
        if (h <= 0) return 0;
        double i = w * h, da = d.W * d.H, ga = g.W * g.H;
        double u = g.IsCrowd ? da : da + ga - i;
        return i / u;
    }
}

/// <summary>A detection's score and its position in the given order, ranked by score (highest first), then position.</summary>
internal readonly record struct RankedDetection(double Score, int Order)
{
    public readonly struct Comparer : IComparer<RankedDetection>
    {
        public int Compare(RankedDetection x, RankedDetection y) =>
            x.Score > y.Score ? -1 : x.Score < y.Score ? 1 : x.Order.CompareTo(y.Order);
    }
}
