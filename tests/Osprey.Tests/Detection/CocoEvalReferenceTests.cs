using System.Globalization;
using Osprey.Detection.Evaluation;
using Osprey.Tests.Support;

namespace Osprey.Tests.Detection;

/// <summary>The 12 COCOeval numbers reproduced to 1e-10 on the shared reference cases.</summary>
public class CocoEvalReferenceTests
{
    private static readonly double[] Fake100 =
    [
        0.5045806987249628, 0.6969727247299577, 0.5729816669904824, 0.5856257209410443, 0.5193996948036719, 0.5013978986347466,
        0.38681277964578054, 0.5936795762842003, 0.595352982877607, 0.6398109626113442, 0.5664205978994309, 0.5642905982905982,
    ];

    private static readonly double[] Small =
    [
        0.6947194719471946, 0.6947194719471946, 0.6947194719471946, -1.0, 0.7920792079207921, 0.0,
        0.6666666666666666, 0.75, 0.75, -1.0, 0.7916666666666666, 0.0,
    ];

    internal static void AssertStats(IReadOnlyList<double> expected, IReadOnlyList<double> actual, string what)
    {
        Assert.Equal(12, actual.Count);
        for (int i = 0; i < 12; i++)
            if (!(Math.Abs(expected[i] - actual[i]) <= 1e-10))
                Assert.Fail(string.Create(CultureInfo.InvariantCulture,
                    $"{what}: stat {i} ({CocoSummary.StatNames[i]}) = {actual[i]:R}, COCO API {expected[i]:R}"));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(-1)]
    public void Fake100_matches_the_COCO_API(int threads)
    {
        var r = CocoEvaluator.EvaluateFiles(RepoPaths.Shared("data", "coco-eval-reference", "instances_val2014_100.json"),
            RepoPaths.Shared("data", "coco-eval-reference", "instances_val2014_fakebbox100_results.json"),
            new CocoEvalOptions { MaxDegreeOfParallelism = threads });
        AssertStats(Fake100, r.Stats, "fake100");
    }

    [Fact]
    public void Small_case_matches_the_COCO_API()
    {
        var r = CocoEvaluator.EvaluateFiles(RepoPaths.Shared("data", "coco-eval-reference", "gt_dataset.json"),
            RepoPaths.Shared("data", "coco-eval-reference", "dt_dataset.json"));
        AssertStats(Small, r.Stats, "small");
    }

    [Fact]
    public void Summary_text_is_the_COCO_API_printout()
    {
        var r = CocoEvaluator.EvaluateFiles(RepoPaths.Shared("data", "coco-eval-reference", "instances_val2014_100.json"),
            RepoPaths.Shared("data", "coco-eval-reference", "instances_val2014_fakebbox100_results.json"));
        var lines = File.ReadAllLines(RepoPaths.Shared("data", "coco-eval-reference", "val2014_fake_eval_res.txt"));
        int start = Array.IndexOf(lines, "type=bbox") + 3;
        // That printout comes from an older cocoeval.py whose format was ' {:<18}{} @[...'; today's summarize() prints
        // ' {:<18} {} @[...' (one more space after the title), which the fixtures from tools/coco_cases.py check exactly.
        var expected = string.Join("\n", lines[start..(start + 12)].Select(l => l[..19] + " " + l[19..])) + "\n";
        Assert.Equal(expected, r.SummaryText());
    }

    [Fact]
    public void Thresholds_are_numpy_linspace_bit_for_bit()
    {
        Assert.Equal(0.8999999999999999, CocoEvalParams.IouThresholds[8]);
        Assert.Equal(0.75, CocoEvalParams.IouThresholds[5]);
        Assert.Equal(double.Parse("0.07", CultureInfo.InvariantCulture), CocoEvalParams.RecallThresholds[7]);
        Assert.Equal(BitConverter.Int64BitsToDouble(0x3FD28F5C28F5C28F), CocoEvalParams.RecallThresholds[29]); // 0x1.28f5c28f5c28fp-2
        Assert.Equal(BitConverter.Int64BitsToDouble(0x3FE23D70A3D70A3E), CocoEvalParams.RecallThresholds[57]); // 0x1.23d70a3d70a3ep-1
        Assert.Equal(1.0, CocoEvalParams.RecallThresholds[100]);
    }

    [Theory]
    [InlineData(0.5625, 3, "0.562")]
    [InlineData(0.5635, 3, "0.564")]
    [InlineData(-1.0, 3, "-1.000")]
    [InlineData(0.0, 3, "0.000")]
    [InlineData(0.9999, 3, "1.000")]
    [InlineData(0.95, 2, "0.95")]
    [InlineData(0.125, 2, "0.12")]
    [InlineData(0.0625, 3, "0.062")]
    public void Fixed_formats_like_Python(double v, int decimals, string expected) => Assert.Equal(expected, CocoSummary.Fixed(v, decimals));
}
