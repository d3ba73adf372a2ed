using System.Text.Json;
using Osprey.Cli.Commands;
using Osprey.Detection.Evaluation;
using Osprey.Tests.Support;
using Osprey.Tests.Vision;
using Spectre.Console;

namespace Osprey.Tests.Detection;

/// <summary>`osprey eval`'s outputs: per-class table, stats JSON at full precision, PR-curve PNGs.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class EvalCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("osprey-eval-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static CocoEvalResult Crowds() =>
        CocoEvaluator.EvaluateFiles(RepoPaths.Fixture("coco", "crowds", "gt.json"), RepoPaths.Fixture("coco", "crowds", "dt.json"));

    [Fact]
    public void Stats_json_round_trips_every_bit()
    {
        var r = Crowds();
        var path = Path.Combine(_dir, "stats.json");
        using (var f = File.Create(path)) r.WriteJson(f);
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var arr = doc.RootElement.GetProperty("stats_array").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        Assert.Equal(r.Stats, arr);
        Assert.Equal(r.Stats[1], doc.RootElement.GetProperty("stats").GetProperty("AP50").GetDouble());
        Assert.Equal(5, doc.RootElement.GetProperty("per_class").GetArrayLength());
    }

    [Fact]
    public void Per_class_table_lists_every_class()
    {
        var r = Crowds();
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors,
        });
        console.Profile.Width = 200;
        console.Write(EvalCommand.PerClassTable(r));
        var text = writer.ToString();
        foreach (var c in r.PerClass())
        {
            Assert.Contains(c.Name, text, StringComparison.Ordinal);
            Assert.Contains(CocoSummary.Fixed(c.AP, 3), text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Plots_are_written_as_valid_pngs()
    {
        var r = Crowds();
        var files = CocoPrPlots.Write(r, Path.Combine(_dir, "plots"));
        Assert.Equal(1 + r.PerClass().Count(c => c.AP >= 0), files.Count);
        Assert.EndsWith("pr_all.png", files[0], StringComparison.Ordinal);
        foreach (var f in files)
        {
            var img = PngEncoderTests.Decode(File.ReadAllBytes(f));
            Assert.Equal(1040, img.Width);
        }
    }
}

[Collection(ConsoleCollection.Name)]
public sealed class EvalCommandLineTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("osprey-evalcli-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void Command_line_writes_json_and_plots_and_fails_cleanly_on_bad_input()
    {
        string gt = RepoPaths.Fixture("coco", "empty_images", "gt.json"), dt = RepoPaths.Fixture("coco", "empty_images", "dt.json");
        string json = Path.Combine(_dir, "s.json"), plots = Path.Combine(_dir, "p");
        var output = new StringWriter();
        var saved = Console.Out;
        Console.SetOut(output);
        int rc;
        try { rc = Osprey.Cli.Program.Main(["eval", "--annotations", gt, "--detections", dt, "--json", json, "--plots", plots]); }
        finally { Console.SetOut(saved); }
        Assert.Equal(0, rc);
        var r = CocoEvaluator.EvaluateFiles(gt, dt);
        Assert.Contains(r.SummaryText(), output.ToString(), StringComparison.Ordinal);
        Assert.True(File.Exists(json));
        Assert.True(File.Exists(Path.Combine(plots, "pr_all.png")));

        var bad = Path.Combine(_dir, "bad.json");
        File.WriteAllText(bad, "[{\"image_id\": 1000, \"category_id\": 1, \"bbox\": [1, 2, 3]");
        var err = new StringWriter();
        var savedErr = Console.Error;
        Console.SetError(err);
        try { rc = Osprey.Cli.Program.Main(["eval", "--annotations", gt, "--detections", bad]); }
        finally { Console.SetError(savedErr); }
        Assert.Equal(2, rc);
        Assert.Contains("bad.json", err.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Ground_truth_without_annotations_gives_minus_one_everywhere()
    {
        var gt = new CocoGroundTruth([new CocoImage(1, 10, 10, "")], [new CocoCategory(3, "c", "")], []);
        var r = new CocoEvaluator(gt).Evaluate([new CocoDetection(1, 3, 0, 0, 5, 5, 0.9)]);
        Assert.All(r.Stats, s => Assert.Equal(-1.0, s));
        var none = new CocoEvaluator(new CocoGroundTruth([], [], [])).Evaluate([]);
        Assert.All(none.Stats, s => Assert.Equal(-1.0, s));
    }
}
