using System.Text.Json;
using Osprey.Detection.Evaluation;
using Osprey.Tests.Support;

namespace Osprey.Tests.Detection;

/// <summary>Edge cases made by tools/coco_cases.py, with stats, printed summary and per-class AP from the official COCO API
/// (pycocotools with its C extension): crowds, images without ground truth or detections, categories without ground
/// truth, equal scores, more than 100 detections per image, an annotation id of 0.</summary>
public class CocoEvalCaseTests
{
    public static TheoryData<string> Cases => new()
    {
        "mixed", "crowds", "empty_images", "categories_without_gt", "equal_scores", "many_detections", "annotation_id_zero",
    };

    private static (CocoEvalResult Result, JsonElement Expected) Run(string name, int threads = -1)
    {
        var r = CocoEvaluator.EvaluateFiles(RepoPaths.Fixture("coco", name, "gt.json"), RepoPaths.Fixture("coco", name, "dt.json"),
            new CocoEvalOptions { MaxDegreeOfParallelism = threads });
        using var doc = JsonDocument.Parse(File.ReadAllText(RepoPaths.Fixture("coco", name, "expected.json")));
        return (r, doc.RootElement.Clone());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Stats_match_the_COCO_API(string name)
    {
        var (r, e) = Run(name);
        var expected = e.GetProperty("stats").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        CocoEvalReferenceTests.AssertStats(expected, r.Stats, name);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Single_thread_gives_the_same_bits(string name)
    {
        var (one, _) = Run(name, 1);
        var (all, _) = Run(name, -1);
        Assert.Equal(one.Stats, all.Stats);
        Assert.Equal(one.Precision, all.Precision);
        Assert.Equal(one.Recall, all.Recall);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Summary_text_is_the_COCO_API_printout(string name)
    {
        var (r, e) = Run(name);
        Assert.Equal(e.GetProperty("summary").GetString(), r.SummaryText());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Per_class_AP_matches_the_COCO_API(string name)
    {
        var (r, e) = Run(name);
        var expected = e.GetProperty("per_class_ap").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        var rows = r.PerClass();
        Assert.Equal(expected.Length, rows.Count);
        for (int k = 0; k < rows.Count; k++)
            Assert.True(Math.Abs(expected[k] - rows[k].AP) <= 1e-10, $"{name}: class {rows[k].CategoryId} AP {rows[k].AP:R}, COCO API {expected[k]:R}");
    }

    [Fact]
    public void Categories_without_ground_truth_are_minus_one()
    {
        var (r, _) = Run("categories_without_gt");
        var rows = r.PerClass();
        foreach (var row in rows)
            Assert.Equal(row.GroundTruths == 0, row.AP == -1);
        Assert.Contains(rows, x => x.AP == -1);
    }

    [Fact]
    public void In_memory_detections_give_the_file_result()
    {
        var gt = CocoJsonLoader.LoadGroundTruth(RepoPaths.Fixture("coco", "mixed", "gt.json"));
        var dets = CocoJsonLoader.LoadDetections(RepoPaths.Fixture("coco", "mixed", "dt.json"), gt);
        var evaluator = new CocoEvaluator(gt);
        var first = evaluator.Evaluate(dets);
        var again = evaluator.Evaluate(dets); // an evaluator is reusable across validation steps
        Assert.Equal(first.Stats, again.Stats);
        var (fromFiles, _) = Run("mixed");
        Assert.Equal(fromFiles.Stats, first.Stats);
        // no detections: AP 0 where ground truth exists
        var empty = evaluator.Evaluate([]);
        Assert.Equal(0.0, empty.Stats[0]);
    }
}
