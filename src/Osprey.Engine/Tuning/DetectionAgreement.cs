using Osprey.Detection.Boxes;

namespace Osprey.Engine.Tuning;

/// <summary>
/// How closely one set of detections (e.g. an FP16 engine's) reproduces a reference set (the FP32 engine's) on the same
/// images. Per image, reference detections are taken in descending score and each is matched to the unmatched candidate
/// of the same label with the highest IoU, if that IoU is at least <c>minIou</c>. Rate = matched / max(reference, candidate
/// count): a detection present on one side only counts against it.
/// </summary>
public sealed record AgreementReport(int Reference, int Candidate, int Matched, double MaxScoreDiff, double MeanScoreDiff,
    double MaxBoxDiff, double MeanIou, double MinIou)
{
    public double MatchRate => Math.Max(Reference, Candidate) == 0 ? 1 : (double)Matched / Math.Max(Reference, Candidate);
}

public static class DetectionAgreement
{
    public static AgreementReport Compare(IReadOnlyList<IReadOnlyList<DetectedObject>> reference,
        IReadOnlyList<IReadOnlyList<DetectedObject>> candidate, double minIou = 0.5)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(candidate);
        if (reference.Count != candidate.Count)
            throw new ArgumentException($"agreement: {reference.Count} reference images, {candidate.Count} candidate images");
        int nRef = 0, nCand = 0, matched = 0;
        double maxScore = 0, sumScore = 0, maxBox = 0, sumIou = 0, minMatchedIou = 1;
        for (int i = 0; i < reference.Count; i++)
        {
            var r = reference[i].OrderByDescending(d => d.Score).ToArray();
            var c = candidate[i];
            nRef += r.Length;
            nCand += c.Count;
            var used = new bool[c.Count];
            foreach (var d in r)
            {
                int best = -1;
                double bestIou = minIou;
                for (int j = 0; j < c.Count; j++)
                {
                    if (used[j] || c[j].Label != d.Label) continue;
                    double iou = Iou(d, c[j]);
                    if (iou >= bestIou) { bestIou = iou; best = j; }
                }
                if (best < 0) continue;
                used[best] = true;
                matched++;
                var m = c[best];
                double ds = Math.Abs(m.Score - d.Score);
                maxScore = Math.Max(maxScore, ds);
                sumScore += ds;
                double db = Math.Max(Math.Max(Math.Abs(m.X1 - d.X1), Math.Abs(m.Y1 - d.Y1)), Math.Max(Math.Abs(m.X2 - d.X2), Math.Abs(m.Y2 - d.Y2)));
                maxBox = Math.Max(maxBox, db);
                sumIou += bestIou;
                minMatchedIou = Math.Min(minMatchedIou, bestIou);
            }
        }
        return new AgreementReport(nRef, nCand, matched, maxScore, matched > 0 ? sumScore / matched : 0, maxBox,
            matched > 0 ? sumIou / matched : 0, matched > 0 ? minMatchedIou : 0);
    }

    public static double Iou(in DetectedObject a, in DetectedObject b)
    {
        double iw = Math.Min(a.X2, b.X2) - Math.Max(a.X1, b.X1), ih = Math.Min(a.Y2, b.Y2) - Math.Max(a.Y1, b.Y1);
        if (iw <= 0 || ih <= 0) return 0;
        double inter = iw * ih;
        double union = (double)a.Width * a.Height + (double)b.Width * b.Height - inter;
        return union > 0 ? inter / union : 0;
    }
}
