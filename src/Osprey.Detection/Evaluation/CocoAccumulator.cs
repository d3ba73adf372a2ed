namespace Osprey.Detection.Evaluation;

/// <summary>COCOeval.accumulate's arrays (numpy layout, -1 where undefined).</summary>
internal sealed record CocoAccumulation(double[] Precision, double[] Recall, double[] Scores);

/// <summary>COCOeval.accumulate: per category, area range and maxDets, the detections of all images ranked by score
/// (stable: image order, then rank within the image), cumulative TP/FP, the precision envelope sampled at 101 recall
/// points. One (category, area) pair per task.</summary>
internal static class CocoAccumulator
{
    public static CocoAccumulation Run(CocoMatches m, int K, int I, ParallelOptions parallel)
    {
        const int T = CocoEvalParams.T, R = CocoEvalParams.R, A = CocoEvalParams.A, M = CocoEvalParams.M;
        var precision = new double[T * R * K * A * M];
        var scores = new double[T * R * K * A * M];
        var recall = new double[T * K * A * M];
        Array.Fill(precision, -1.0);
        Array.Fill(scores, -1.0);
        Array.Fill(recall, -1.0);
        Parallel.For(0, K * A, parallel, () => new Scratch(), (ka, _, s) =>
        {
            int k = ka / A, a = ka % A;
            long npig = m.NotIgnored[k * A + a];
            if (npig == 0) return s; // COCOeval: no ground truth in range, the entries stay -1
            for (int mi = 0; mi < M; mi++)
                AccumulateOne(m, k, a, mi, I, npig, s, precision, recall, scores, K);
            return s;
        }, _ => { });
        return new CocoAccumulation(precision, recall, scores);
    }

    private sealed class Scratch
    {
        public RankedDetection[] Ranked = new RankedDetection[1024];
        public int[] Positions = new int[1024];
        public double[] Precision = new double[1024];
        public double[] RecallCurve = new double[1024];

        public void Ensure(int n)
        {
            if (Ranked.Length >= n) return;
            Ranked = new RankedDetection[n];
            Positions = new int[n];
            Precision = new double[n];
            RecallCurve = new double[n];
        }
    }

    private static void AccumulateOne(CocoMatches m, int k, int a, int mi, int I, long npig, Scratch s,
        double[] precisionOut, double[] recallOut, double[] scoresOut, int K)
    {
        const int T = CocoEvalParams.T, R = CocoEvalParams.R, A = CocoEvalParams.A, M = CocoEvalParams.M;
        int maxDet = CocoEvalParams.MaxDetections[mi];
        int n = 0;
        for (int i = 0; i < I; i++)
        {
            int c = k * I + i;
            n += Math.Min(m.CellDtStart[c + 1] - m.CellDtStart[c], maxDet);
        }
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
        var pr = s.Precision.AsSpan(0, n);
        var rc = s.RecallCurve.AsSpan(0, n);
        var recThrs = CocoEvalParams.RecallThresholds;
        int total = m.TotalDetections;
        double eps = Math.BitIncrement(1.0) - 1.0; // np.spacing(1)
        for (int t = 0; t < T; t++)
        {
            var state = m.State.AsSpan((a * T + t) * total, total);
            double tp = 0, fp = 0;
            for (int j = 0; j < n; j++)
            {
                byte st = state[positions[ranked[j].Order]];
                if (st == CocoMatches.TruePositive) tp++;
                else if (st == CocoMatches.FalsePositive) fp++;
                rc[j] = tp / npig;
                pr[j] = tp / (fp + tp + eps);
            }
            recallOut[((t * K + k) * A + a) * M + mi] = n > 0 ? rc[n - 1] : 0;
            for (int j = n - 1; j > 0; j--)
                if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
            // np.searchsorted(rc, recThrs, side='left'); points past the end keep 0 (COCOeval's try/except)
            int p = 0;
            for (int r = 0; r < R; r++)
            {
                int o = (((t * R + r) * K + k) * A + a) * M + mi;
                while (p < n && rc[p] < recThrs[r]) p++;
                if (p < n)
                {
                    precisionOut[o] = pr[p];
                    scoresOut[o] = m.Scores[positions[ranked[p].Order]];
                }
                else
                {
                    for (int r2 = r; r2 < R; r2++)
                    {
                        int o2 = (((t * R + r2) * K + k) * A + a) * M + mi;
                        precisionOut[o2] = 0;
                        scoresOut[o2] = 0;
                    }
                    break;
                }
            }
        }
    }
}
