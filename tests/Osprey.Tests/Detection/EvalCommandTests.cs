using System.Text.Json;
using Osprey.Cli.Commands;
using Osprey.Detection.Evaluation;
using Osprey.Tests.Support;
using Osprey.Tests.Vision;
using Spectre.Console;

namespace Osprey.Tests.Detection;

/// <summary>`osprey eval`'s outputs: per-class table, stats JSON at full precision, PR-curve PNGs.</summary>
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
