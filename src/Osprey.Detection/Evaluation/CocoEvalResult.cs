using System.Text.Json;

namespace Osprey.Detection.Evaluation;

/// <summary>Seconds spent in each stage (load is 0 for in-memory evaluation).</summary>
public readonly record struct CocoEvalTimings(double LoadSeconds, double EvaluateSeconds, double AccumulateSeconds, double SummarizeSeconds)
{
    public double TotalSeconds => LoadSeconds + EvaluateSeconds + AccumulateSeconds + SummarizeSeconds;
}

/// <summary>One category's figures (-1 where it has no ground truth in range).</summary>
public readonly record struct CocoClassResult(long CategoryId, string Name, int GroundTruths, double AP, double AP50, double AP75,
    double APSmall, double APMedium, double APLarge, double AR100);

/// <summary>COCOeval's outputs: the 12 stats, and the accumulated arrays in numpy layout:
/// precision and scores [T=10, R=101, K, A=4, M=3], recall [T, K, A, M]; -1 where undefined.</summary>
public sealed record CocoEvalResult(
    IReadOnlyList<double> Stats,
    double[] Precision,
    double[] Recall,
    double[] Scores,
    IReadOnlyList<long> CategoryIds,
    IReadOnlyList<string> CategoryNames,
    IReadOnlyList<int> GroundTruthCounts,
    int ImageCount,
    int DetectionCount,
    CocoEvalTimings Timings)
{
    public int CategoryCount => CategoryIds.Count;

    public double AP => Stats[0];

    /// <summary>precision[t, r, k, a, m].</summary>
    public double PrecisionAt(int t, int r, int k, int a, int m) =>
        Precision[(((t * CocoEvalParams.R + r) * CategoryCount + k) * CocoEvalParams.A + a) * CocoEvalParams.M + m];

    /// <summary>recall[t, k, a, m].</summary>
    public double RecallAt(int t, int k, int a, int m) =>
        Recall[((t * CategoryCount + k) * CocoEvalParams.A + a) * CocoEvalParams.M + m];

    /// <summary>The 12 summary lines as COCOeval.summarize prints them.</summary>
    public string SummaryText() => CocoSummary.Format(Stats);

    /// <summary>Per-category AP (as the summary's definitions restricted to one category), in category-id order.</summary>
    public IReadOnlyList<CocoClassResult> PerClass()
    {
        var rows = new CocoClassResult[CategoryCount];
        var lines = CocoSummary.Lines;
        for (int k = 0; k < rows.Length; k++)
        {
            double V(int line) => CocoSummary.Value(Precision, Recall, CategoryCount, lines[line], k);
            rows[k] = new CocoClassResult(CategoryIds[k], CategoryNames[k], GroundTruthCounts[k], V(0), V(1), V(2), V(3), V(4), V(5), V(8));
        }
        return rows;
    }

    /// <summary>Writes stats (full precision, round-trip doubles), per-class figures and timings as JSON.</summary>
    public void WriteJson(Stream stream)
    {
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteStartObject("stats");
        for (int i = 0; i < Stats.Count; i++) w.WriteNumber(CocoSummary.StatNames[i], Stats[i]);
        w.WriteEndObject();
        w.WriteStartArray("stats_array");
        foreach (var s in Stats) w.WriteNumberValue(s);
        w.WriteEndArray();
        w.WriteNumber("images", ImageCount);
        w.WriteNumber("detections", DetectionCount);
        w.WriteStartArray("per_class");
        foreach (var c in PerClass())
        {
            w.WriteStartObject();
            w.WriteNumber("category_id", c.CategoryId);
            w.WriteString("name", c.Name);
            w.WriteNumber("ground_truths", c.GroundTruths);
            w.WriteNumber("AP", c.AP);
            w.WriteNumber("AP50", c.AP50);
            w.WriteNumber("AP75", c.AP75);
            w.WriteNumber("APs", c.APSmall);
            w.WriteNumber("APm", c.APMedium);
            w.WriteNumber("APl", c.APLarge);
            w.WriteNumber("AR100", c.AR100);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartObject("seconds");
        w.WriteNumber("load", Timings.LoadSeconds);
        w.WriteNumber("evaluate", Timings.EvaluateSeconds);
        w.WriteNumber("accumulate", Timings.AccumulateSeconds);
        w.WriteNumber("summarize", Timings.SummarizeSeconds);
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
