using System.CommandLine;
using System.Globalization;
using Osprey.Detection.Evaluation;
using Spectre.Console;

namespace Osprey.Cli.Commands;

/// <summary>What to report after a COCO evaluation (shared by `osprey eval` and, later, `osprey infer --annotations`).</summary>
public sealed record EvalReportOptions
{
    /// <summary>Write full-precision stats, per-class figures and timings here (JSON); null = do not.</summary>
    public string? JsonPath { get; init; }
    /// <summary>Print the per-class AP table.</summary>
    public bool PerClass { get; init; }
    /// <summary>Write precision-recall curves (PNG) into this folder; null = do not.</summary>
    public string? PlotsDirectory { get; init; }
}

/// <summary>`osprey eval`: COCO bbox evaluation of a results file against an instances file, exactly as COCOeval.</summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var annotations = new Option<FileInfo>("--annotations") { Description = "COCO instances JSON (ground truth)", Required = true };
        var detections = new Option<FileInfo>("--detections") { Description = "COCO results JSON (detections)", Required = true };
        var json = new Option<FileInfo?>("--json") { Description = "write full-precision stats as JSON to this file" };
        var perClass = new Option<bool>("--per-class") { Description = "print a per-class AP table" };
        var plots = new Option<DirectoryInfo?>("--plots") { Description = "write precision-recall curves (PNG) into this folder" };
        var threads = new Option<int>("--threads") { Description = "threads to use (-1 = all cores)", DefaultValueFactory = _ => -1 };
        var cmd = new Command("eval", "COCO bbox evaluation (the 12 COCOeval numbers, per-class AP, PR curves)")
        {
            annotations, detections, json, perClass, plots, threads,
        };
        cmd.SetAction(p => Run(p.GetValue(annotations)!.FullName, p.GetValue(detections)!.FullName,
            new CocoEvalOptions { MaxDegreeOfParallelism = p.GetValue(threads) },
            new EvalReportOptions { JsonPath = p.GetValue(json)?.FullName, PerClass = p.GetValue(perClass), PlotsDirectory = p.GetValue(plots)?.FullName }));
        return cmd;
    }

    private static int Run(string annotationsPath, string detectionsPath, CocoEvalOptions options, EvalReportOptions report)
    {
        try
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            CocoGroundTruth gt = null!;
            CocoDetection[] dets = null!;
            AnsiConsole.Status().Start("loading", ctx =>
            {
                ctx.Status($"loading {Markup.Escape(Path.GetFileName(annotationsPath))}");
                gt = CocoJsonLoader.LoadGroundTruth(annotationsPath);
                ctx.Status($"loading {Markup.Escape(Path.GetFileName(detectionsPath))}");
                dets = CocoJsonLoader.LoadDetections(detectionsPath, gt);
            });
            double load = sw.Elapsed.TotalSeconds;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Loaded {gt.Images.Count} images, {gt.Categories.Count} categories, {gt.Annotations.Count} annotations, {dets.Length} detections (t={load:F2}s)."));
            var result = new CocoEvaluator(gt, options).Evaluate(dets);
            result = result with { Timings = result.Timings with { LoadSeconds = load } };
            Report(result, report);
            return 0;
        }
        catch (CocoFormatException e)
        {
            Console.Error.WriteLine($"osprey eval: {e.Message}");
            return 2;
        }
    }

    /// <summary>Prints COCOeval's stage lines and 12-line summary, then the per-class table, JSON and plots as asked.
    /// This is what `osprey infer --annotations` calls after evaluating its detections in memory.</summary>
    public static void Report(CocoEvalResult result, EvalReportOptions options)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(options);
        var t = result.Timings;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Running per image evaluation...      DONE (t={t.EvaluateSeconds:F2}s)."));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Accumulating evaluation results...   DONE (t={t.AccumulateSeconds:F2}s)."));
        Console.Write(result.SummaryText());
        if (options.PerClass) AnsiConsole.Write(PerClassTable(result));
        if (options.JsonPath is { } json)
        {
            using (var f = File.Create(json)) result.WriteJson(f);
            Console.WriteLine($"stats written to {json}");
        }
        if (options.PlotsDirectory is { } dir)
        {
            var files = CocoPrPlots.Write(result, dir);
            Console.WriteLine($"{files.Count} precision-recall plots written to {dir}");
        }
    }

    /// <summary>Per-class AP table (AP, AP50, AP75, APs/m/l, AR100; "-" where a class has no ground truth in range).</summary>
    public static Table PerClassTable(CocoEvalResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var table = new Table().Border(TableBorder.Rounded).Title("per-class AP (area=all, maxDets=100 unless named)");
        table.AddColumn("id");
        table.AddColumn(new TableColumn("class").NoWrap());
        foreach (var h in new[] { "gt", "AP", "AP50", "AP75", "APs", "APm", "APl", "AR100" }) table.AddColumn(new TableColumn(h).RightAligned());
        static string F(double v) => v < 0 ? "-" : CocoSummary.Fixed(v, 3);
        foreach (var c in result.PerClass())
            table.AddRow(c.CategoryId.ToString(CultureInfo.InvariantCulture), Markup.Escape(c.Name), c.GroundTruths.ToString(CultureInfo.InvariantCulture),
                F(c.AP), F(c.AP50), F(c.AP75), F(c.APSmall), F(c.APMedium), F(c.APLarge), F(c.AR100));
        return table;
    }
}
