using System.Globalization;
using System.Numerics;
using System.Text;

namespace Osprey.Detection.Evaluation;

/// <summary>COCOeval.summarize: the 12 numbers, their printed lines, and per-category figures.</summary>
public static class CocoSummary
{
    /// <summary>One summary line's definition: AP or AR, IoU threshold (null = .50:.95), area label, maxDets.</summary>
    public readonly record struct Line(bool Precision, double? Iou, string Area, int MaxDets);

    /// <summary>The 12 lines in COCOeval's order: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl.</summary>
    public static IReadOnlyList<Line> Lines { get; } =
    [
        new(true, null, "all", 100), new(true, 0.5, "all", 100), new(true, 0.75, "all", 100),
        new(true, null, "small", 100), new(true, null, "medium", 100), new(true, null, "large", 100),
        new(false, null, "all", 1), new(false, null, "all", 10), new(false, null, "all", 100),
        new(false, null, "small", 100), new(false, null, "medium", 100), new(false, null, "large", 100),
    ];

    public static IReadOnlyList<string> StatNames { get; } = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"];

    internal static double[] Stats(CocoAccumulation acc, int K)
    {
        var stats = new double[Lines.Count];
        for (int i = 0; i < stats.Length; i++) stats[i] = Value(acc.Precision, acc.Recall, K, Lines[i], null);
        return stats;
    }

    /// <summary>One summary value, optionally restricted to one category index; -1 when nothing is defined.</summary>
    internal static double Value(double[] precision, double[] recall, int K, Line line, int? category)
    {
        const int T = CocoEvalParams.T, R = CocoEvalParams.R, A = CocoEvalParams.A, M = CocoEvalParams.M;
        int a = IndexOf(CocoEvalParams.AreaLabels, line.Area), m = CocoEvalParams.MaxDetections.IndexOf(line.MaxDets);
        if (a < 0 || m < 0) return -1;
        int t0 = 0, t1 = T;
        if (line.Iou is double thr)
        {
            t0 = CocoEvalParams.IouThresholds.IndexOf(thr); // exact equality, as np.where(iouThr == p.iouThrs)
            if (t0 < 0) return -1;
            t1 = t0 + 1;
        }
        int k0 = category ?? 0, k1 = category + 1 ?? K;
        // numpy order of s[s > -1]: C order over the remaining axes [t, r, k] (precision) or [t, k] (recall)
        var kept = new List<double>((t1 - t0) * (line.Precision ? R : 1) * (k1 - k0));
        for (int t = t0; t < t1; t++)
        {
            if (line.Precision)
            {
                for (int r = 0; r < R; r++)
                    for (int k = k0; k < k1; k++)
                    {
                        double v = precision[(((t * R + r) * K + k) * A + a) * M + m];
                        if (v > -1) kept.Add(v);
                    }
            }
            else
            {
                for (int k = k0; k < k1; k++)
                {
                    double v = recall[((t * K + k) * A + a) * M + m];
                    if (v > -1) kept.Add(v);
                }
            }
        }
        return kept.Count == 0 ? -1 : NumpySum(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(kept)) / kept.Count;
    }

    private static int IndexOf(IReadOnlyList<string> list, string value)
    {
        for (int i = 0; i < list.Count; i++) if (list[i] == value) return i;
        return -1;
    }

    /// <summary>np.add.reduce for float64: buffers of 8192 elements, each summed pairwise (8 accumulators, blocks of 128).</summary>
    internal static double NumpySum(ReadOnlySpan<double> a)
    {
        double acc = 0;
        for (int s = 0; s < a.Length; s += 8192) acc += Pairwise(a.Slice(s, Math.Min(8192, a.Length - s)));
        return acc;
    }

    private static double Pairwise(ReadOnlySpan<double> a)
    {
        int n = a.Length;
        if (n < 8)
        {
            double res = 0;
            for (int i = 0; i < n; i++) res += a[i];
            return res;
        }
        if (n <= 128)
        {
            double r0 = a[0], r1 = a[1], r2 = a[2], r3 = a[3], r4 = a[4], r5 = a[5], r6 = a[6], r7 = a[7];
            int i = 8;
            for (; i < n - (n % 8); i += 8)
            {
                r0 += a[i]; r1 += a[i + 1]; r2 += a[i + 2]; r3 += a[i + 3];
                r4 += a[i + 4]; r5 += a[i + 5]; r6 += a[i + 6]; r7 += a[i + 7];
            }
            double res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7));
            for (; i < n; i++) res += a[i];
            return res;
        }
        int n2 = n / 2;
        n2 -= n2 % 8;
        return Pairwise(a[..n2]) + Pairwise(a[n2..]);
    }

    /// <summary>The 12 lines exactly as COCOeval.summarize prints them.</summary>
    public static string Format(IReadOnlyList<double> stats)
    {
        ArgumentNullException.ThrowIfNull(stats);
        var sb = new StringBuilder();
        for (int i = 0; i < Lines.Count; i++) sb.Append(FormatLine(Lines[i], stats[i])).Append('\n');
        return sb.ToString();
    }

    /// <summary>' {:&lt;18} {} @[ IoU={:&lt;9} | area={:&gt;6s} | maxDets={:&gt;3d} ] = {:0.3f}'</summary>
    public static string FormatLine(Line line, double value)
    {
        var thr = CocoEvalParams.IouThresholds;
        string iou = line.Iou is double t ? Fixed(t, 2) : $"{Fixed(thr[0], 2)}:{Fixed(thr[^1], 2)}";
        string title = line.Precision ? "Average Precision" : "Average Recall";
        string type = line.Precision ? "(AP)" : "(AR)";
        return string.Create(CultureInfo.InvariantCulture,
            $" {title,-18} {type} @[ IoU={iou,-9} | area={line.Area,6} | maxDets={line.MaxDets,3} ] = {Fixed(value, 3)}");
    }

    /// <summary>Python's '{:0.Nf}': the exact binary value rounded half to even (.NET rounds such ties away from zero).</summary>
    public static string Fixed(double value, int decimals)
    {
        if (!double.IsFinite(value)) return value.ToString(CultureInfo.InvariantCulture);
        bool negative = value < 0 || (value == 0 && double.IsNegative(value));
        long bits = BitConverter.DoubleToInt64Bits(Math.Abs(value));
        int exp = (int)((bits >> 52) & 0x7FF);
        long mant = bits & 0xFFFFFFFFFFFFFL;
        if (exp == 0) exp = 1; else mant |= 1L << 52;
        exp -= 1075; // value = mant * 2^exp
        BigInteger scaled = new BigInteger(mant) * BigInteger.Pow(10, decimals), q;
        if (exp >= 0) q = scaled << exp;
        else
        {
            BigInteger den = BigInteger.One << -exp;
            q = BigInteger.DivRem(scaled, den, out var rem);
            int cmp = (rem * 2).CompareTo(den);
            if (cmp > 0 || (cmp == 0 && !q.IsEven)) q += 1;
        }
        string digits = q.ToString(CultureInfo.InvariantCulture).PadLeft(decimals + 1, '0');
        string s = decimals == 0 ? digits : digits[..^decimals] + "." + digits[^decimals..];
        return negative ? "-" + s : s;
    }
}
