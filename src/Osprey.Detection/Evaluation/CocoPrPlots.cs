using System.Globalization;
using System.Text;
using Osprey.Vision.Imaging;

namespace Osprey.Detection.Evaluation;

/// <summary>Precision-recall curves from COCOeval's precision array (area all, maxDets 100) as PNG files: one plot with
/// a curve per IoU threshold averaged over categories, and one plot per category with a curve per IoU threshold.</summary>
public static class CocoPrPlots
{
    /// <summary>Writes pr_all.png and pr_class_&lt;id&gt;_&lt;name&gt;.png (categories with ground truth) into the folder;
    /// returns the paths written.</summary>
    public static IReadOnlyList<string> Write(CocoEvalResult result, string directory, LinePlotOptions? style = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        Directory.CreateDirectory(directory);
        var written = new List<string>();
        var baseStyle = (style ?? new LinePlotOptions { Width = 1040, Height = 600 }) with
        {
            XMin = 0, XMax = 1, YMin = 0, YMax = 1.0, XTickStep = 0.1, YTickStep = 0.1,
            XLabel = "recall", YLabel = "precision", Legend = LegendCorner.OutsideRight,
        };
        var all = Curves(result, null);
        string path = Path.Combine(directory, "pr_all.png");
        PngEncoder.Save(LinePlot.Render(all, baseStyle with
        {
            Title = Title($"All classes: AP {CocoSummary.Fixed(result.Stats[0], 3)}"),
        }), path);
        written.Add(path);
        var perClass = result.PerClass();
        for (int k = 0; k < result.CategoryCount; k++)
        {
            if (perClass[k].AP < 0) continue; // no ground truth: COCOeval leaves the curve undefined (-1)
            path = Path.Combine(directory, $"pr_class_{result.CategoryIds[k].ToString(CultureInfo.InvariantCulture)}_{SafeName(result.CategoryNames[k])}.png");
            PngEncoder.Save(LinePlot.Render(Curves(result, k), baseStyle with
            {
                Title = Title($"{result.CategoryNames[k]} (id {result.CategoryIds[k]}): AP {CocoSummary.Fixed(perClass[k].AP, 3)}"),
            }), path);
            written.Add(path);
        }
        return written;
    }

    /// <summary>Precision at the 101 recall points per IoU threshold, for one category or averaged over the defined ones.</summary>
    public static IReadOnlyList<PlotSeries> Curves(CocoEvalResult result, int? category)
    {
        ArgumentNullException.ThrowIfNull(result);
        var recall = CocoEvalParams.RecallThresholds.ToArray();
        var thresholds = CocoEvalParams.IouThresholds;
        var series = new List<PlotSeries>(CocoEvalParams.T);
        int m = CocoEvalParams.M - 1; // maxDets 100
        for (int t = 0; t < CocoEvalParams.T; t++)
        {
            var y = new double[CocoEvalParams.R];
            double apSum = 0;
            int apCount = 0;
            for (int r = 0; r < CocoEvalParams.R; r++)
            {
                double sum = 0;
                int n = 0;
                for (int k = category ?? 0; k < (category + 1 ?? result.CategoryCount); k++)
                {
                    double v = result.PrecisionAt(t, r, k, 0, m);
                    if (v > -1) { sum += v; n++; }
                }
                y[r] = n > 0 ? sum / n : double.NaN;
                if (n > 0) { apSum += y[r]; apCount++; }
            }
            string ap = apCount > 0 ? CocoSummary.Fixed(apSum / apCount, 3) : "n/a";
            series.Add(new PlotSeries($"IoU={CocoSummary.Fixed(thresholds[t], 2)} AP {ap}", recall, y));
        }
        return series;
    }

    private static string Title(string s) => s.Length <= 60 ? s : s[..57] + "...";

    private static string SafeName(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (char ch in name) sb.Append(char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_' ? ch : '_');
        return sb.Length == 0 ? "unnamed" : sb.ToString();
    }
}
