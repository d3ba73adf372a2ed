namespace Osprey.Detection.Evaluation;

/// <summary>COCOeval.accumulate's arrays (numpy layout, -1 where undefined).</summary>
internal sealed record CocoAccumulation(double[] Precision, double[] Recall, double[] Scores);

/// <summary>COCOeval.accumulate: per category, area range and maxDets, the detections of all images ranked by score
/// (stable: image order, then rank within the image), cumulative TP/FP, the precision envelope sampled at 101 recall
/// points. Phase 1 ranks once per (category, maxDets); phase 2 runs one (category, maxDets, area, IoU) curve per task.</summary>
internal static class CocoAccumulator
{
    private const int T = CocoEvalParams.T, R = CocoEvalParams.R, A = CocoEvalParams.A, M = CocoEvalParams.M;

    public static CocoAccumulation Run(CocoMatches m, int K, int I, ParallelOptions parallel)
    {
        var precision = new double[T * R * K * A * M];
        var scores = new double[T * R * K * A * M];
        var recall = new double[T * K * A * M];
        Array.Fill(precision, -1.0);
        Array.Fill(scores, -1.0);
        Array.Fill(recall, -1.0);

        // Phase 1: the ranking depends only on the category and maxDets.
        var rankStart = new long[K * M + 1];
        for (int km = 0; km < K * M; km++)
        {
            int k = km / M, maxDet = CocoEvalParams.MaxDetections[km % M];
            long n = 0;
            for (int i = 0; i < I; i++)
            {
                int c = k * I + i;
                n += Math.Min(m.CellDtStart[c + 1] - m.CellDtStart[c], maxDet);
            }
            rankStart[km + 1] = rankStart[km] + n;
        }
        var ranked = new int[rankStart[K * M]];
        Parallel.For(0, K * M, parallel, () => new RankScratch(), (km, _, s) =>
        {
            Rank(m, km / M, CocoEvalParams.MaxDetections[km % M], I, s,
                ranked.AsSpan((int)rankStart[km], (int)(rankStart[km + 1] - rankStart[km])));
            return s;
        }, _ => { });

        // Phase 2: one precision-recall curve per task.
        Parallel.For(0, K * M * A * T, parallel, () => new CurveScratch(), (task, _, s) =>
        {
            int t = task % T, a = task / T % A, km = task / (T * A), k = km / M, mi = km % M;
            long npig = m.NotIgnored[k * A + a];
            if (npig == 0) return s; // COCOeval: no ground truth in range, the entries stay -1
            Curve(m, k, a, mi, t, npig, ranked.AsSpan((int)rankStart[km], (int)(rankStart[km + 1] - rankStart[km])), s,
                precision, recall, scores, K);
            return s;
        }, _ => { });
        return new CocoAccumulation(precision, recall, scores);
    }

    private sealed class RankScratch
    {
        public RankedDetection[] Ranked = new RankedDetection[1024];
        public int[] Positions = new int[1024];

        public void Ensure(int n)
        {
            if (Ranked.Length >= n) return;
            Ranked = new RankedDetection[n];
            Positions = new int[n];
        }
    }

    private sealed class CurveScratch
    {
        public double[] Precision = new double[1024];
        public double[] RecallCurve = new double[1024];

        public void Ensure(int n)
        {
            if (Precision.Length >= n) return;
            Precision = new double[n];
            RecallCurve = new double[n];
        }
    }

    /// <summary>Ranks the first maxDet detections of every image of category k by score, highest first; ties keep image
    /// order, then rank within the image (numpy's stable mergesort over the concatenation). Writes detection positions.</summary>
    private static void Rank(CocoMatches m, int k, int maxDet, int I, RankScratch s, Span<int> sorted)
    {
        int n = sorted.Length;
        s.Ensure(n);
        var ranked = s.Ranked.AsSpan(0, n);
        var positions = s.Positions.AsSpan(0, n);
        n = 0;
        for (int i = 0; i < I; i++)
        {
            int c = k * I + i, start = m.CellDtStart[c], take = Math.Min(m.CellDtStart[c + 1] - start, maxDet);
            for (int d = 0; d < take; d++) { positions[n] = start + d; ranked[n] = new RankedDetection(m.Scores[start + d], n); n++; }
        }
        ranked.Sort(default(RankedDetection.Comparer));
        for (int j = 0; j < n; j++) sorted[j] = positions[ranked[j].Order];
    }

    private static void Curve(CocoMatches m, int k, int a, int mi, int t, long npig, ReadOnlySpan<int> sorted, CurveScratch s,
        double[] precisionOut, double[] recallOut, double[] scoresOut, int K)
    {
        int n = sorted.Length;
        s.Ensure(n);
        var pr = s.Precision.AsSpan(0, n);
        var rc = s.RecallCurve.AsSpan(0, n);
        var recThrs = CocoEvalParams.RecallThresholds;
        int total = m.TotalDetections;
        double eps = Math.BitIncrement(1.0) - 1.0; // np.spacing(1)
        var state = m.State.AsSpan((a * T + t) * total, total);
        double tp = 0, fp = 0;
        for (int j = 0; j < n; j++)
        {
            byte st = state[sorted[j]];
            if (st == CocoMatches.TruePositive) tp++;
            else if (st == CocoMatches.FalsePositive) fp++;
            rc[j] = tp / npig;
            pr[j] = tp / (fp + tp + eps);
        }
        recallOut[((t * K + k) * A + a) * M + mi] = n > 0 ? rc[n - 1] : 0;
        for (int j = n - 1; j > 0; j--)
            if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
        // np.searchsorted(rc, recThrs, side='left'); recall points past the end keep 0 (COCOeval's try/except)
        int p = 0;
        for (int r = 0; r < R; r++)
        {
            int o = (((t * R + r) * K + k) * A + a) * M + mi;
            while (p < n && rc[p] < recThrs[r]) p++;
            bool inside = p < n;
            precisionOut[o] = inside ? pr[p] : 0;
            scoresOut[o] = inside ? m.Scores[sorted[p]] : 0;
        }
    }
}
