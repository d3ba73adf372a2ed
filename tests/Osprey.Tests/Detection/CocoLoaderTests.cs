using Osprey.Detection.Evaluation;

namespace Osprey.Tests.Detection;

/// <summary>Loader errors name the file, the line and column, the element and the problem.</summary>
public sealed class CocoLoaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("osprey-coco-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private const string GoodGt = """
        {"images": [{"id": 1, "width": 640, "height": 480, "file_name": "a.jpg"},
                    {"id": 2, "width": 640, "height": 480}],
         "categories": [{"id": 7, "name": "cat"}],
         "annotations": [
           {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 10, 50, 40], "area": 1800, "iscrowd": 0,
            "segmentation": [[10, 10, 60, 10, 60, 50]]}]}
        """;

    private string Write(string name, string text)
    {
        var p = Path.Combine(_dir, name);
        File.WriteAllText(p, text.ReplaceLineEndings("\n"));
        return p;
    }

    private static void Has(CocoFormatException e, string part) => Assert.True(e.Message.Contains(part, StringComparison.Ordinal), $"'{part}' not in: {e.Message}");

    private static CocoFormatException Fails(Action a) => Assert.Throws<CocoFormatException>(a);

    [Fact]
    public void Good_files_load()
    {
        var gt = CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt));
        Assert.Equal(2, gt.Images.Count);
        Assert.Equal("a.jpg", gt.Images[0].FileName);
        Assert.Equal(new CocoAnnotation(1, 1, 7, 10, 10, 50, 40, 1800, false), gt.Annotations[0]);
        var dets = CocoJsonLoader.LoadDetections(Write("dt.json", """[{"image_id": 2, "category_id": 7, "bbox": [1.5, 2, 3, 4], "score": 0.25}]"""), gt);
        Assert.Equal(new CocoDetection(2, 7, 1.5, 2, 3, 4, 0.25), dets[0]);
    }

    [Fact]
    public void Missing_field_is_named_with_its_place()
    {
        var e = Fails(() => CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt.Replace("\"area\": 1800, ", ""))));
        Has(e, "gt.json: line 5, column 4");
        Has(e, "annotations[0]: missing field \"area\"");
        e = Fails(() => CocoJsonLoader.LoadGroundTruth(Write("gt.json", """{"images": [], "annotations": []}""")));
        Has(e, "missing field \"categories\"");
    }

    [Fact]
    public void Malformed_json_names_line_and_column()
    {
        var e = Fails(() => CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt.Replace("\"height\": 480}]", "\"height\": 480,,}]"))));
        Has(e, "gt.json: line 2, column");
        Has(e, "malformed JSON");
    }

    [Fact]
    public void Truncated_file_is_reported()
    {
        var e = Fails(() => CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt[..(GoodGt.Length / 2)])));
        Has(e, "gt.json");
        Assert.True(e.Message.Contains("truncated", StringComparison.Ordinal) || e.Message.Contains("malformed JSON", StringComparison.Ordinal), e.Message);
        var gt = CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt));
        e = Fails(() => CocoJsonLoader.LoadDetections(Write("dt.json", """[{"image_id": 2, "category_id": 7, "bbox": [1.5, 2,"""), gt));
        Has(e, "dt.json");
    }

    [Fact]
    public void Detection_for_unknown_image_or_category_is_rejected()
    {
        var gt = CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt));
        var e = Fails(() => CocoJsonLoader.LoadDetections(Write("dt.json", """
            [{"image_id": 2, "category_id": 7, "bbox": [1, 2, 3, 4], "score": 0.5},
             {"image_id": 3, "category_id": 7, "bbox": [1, 2, 3, 4], "score": 0.5}]
            """), gt));
        Has(e, "dt.json: line 2, column 2 (detections[1]): detection for unknown image_id 3");
        e = Fails(() => CocoJsonLoader.LoadDetections(Write("dt.json", """[{"image_id": 2, "category_id": 8, "bbox": [1, 2, 3, 4], "score": 0.5}]"""), gt));
        Has(e, "detection for unknown category_id 8");
        e = Fails(() => CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt.Replace("\"image_id\": 1", "\"image_id\": 5"))));
        Has(e, "line 5, column 4 (annotations[0]): annotation 1 names unknown image_id 5");
    }

    [Fact]
    public void Negative_sizes_are_rejected()
    {
        var e = Fails(() => CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt.Replace("[10, 10, 50, 40]", "[10, 10, -50, 40]"))));
        Has(e, "gt.json: line 5");
        Has(e, "annotations[0]: \"bbox\" [10, 10, -50, 40] has a negative width or height");
        e = Fails(() => CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt.Replace("\"width\": 640, \"height\": 480}]", "\"width\": -640, \"height\": 480}]"))));
        Has(e, "images[1]: negative size -640x480");
        e = Fails(() => CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt.Replace("\"area\": 1800", "\"area\": -1"))));
        Has(e, "\"area\" -1 is negative");
        var gt = CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt));
        e = Fails(() => CocoJsonLoader.LoadDetections(Write("dt.json", """[{"image_id": 2, "category_id": 7, "bbox": [1, 2, 3, -4], "score": 0.5}]"""), gt));
        Has(e, "detections[0]: \"bbox\" [1, 2, 3, -4] has a negative width or height");
    }

    [Fact]
    public void Wrong_kinds_and_shapes_are_rejected()
    {
        var e = Fails(() => CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt.Replace("\"bbox\": [10, 10, 50, 40]", "\"bbox\": [10, 10, 50]"))));
        Has(e, "\"bbox\" has 3 numbers, expected 4");
        e = Fails(() => CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt.Replace("\"id\": 1, \"image_id\"", "\"id\": \"x\", \"image_id\""))));
        Has(e, "annotations[0]: \"id\" must be an integer, found String");
        e = Fails(() => CocoJsonLoader.LoadGroundTruth(Write("gt.json", "[]")));
        Has(e, "expected a JSON object at the top level");
        var gt = CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt));
        e = Fails(() => CocoJsonLoader.LoadDetections(Write("dt.json", """[{"image_id": 2, "category_id": 7, "bbox": [1, 2, 3, 4]}]"""), gt));
        Has(e, "dt.json: line 1, column 2: detections[0]: missing field \"score\"");
        e = Fails(() => CocoJsonLoader.LoadGroundTruth(Path.Combine(_dir, "absent.json")));
        Has(e, "absent.json: cannot open");
    }

    [Fact]
    public void Duplicate_ids_are_rejected()
    {
        var e = Fails(() => CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt.Replace("{\"id\": 2,", "{\"id\": 1,"))));
        Has(e, "line 2, column 13 (images[1]): duplicate image id 1");
    }

    [Fact]
    public void Large_values_stream_through_small_windows()
    {
        // a segmentation far larger than the initial window, skipped without holding the file
        var seg = string.Join(",", Enumerable.Range(0, 400_000).Select(i => (i % 640).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var gt = CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt.Replace("[[10, 10, 60, 10, 60, 50]]", "[[" + seg + "]]")));
        Assert.Single(gt.Annotations);
        Assert.Equal(1800, gt.Annotations[0].Area);
    }

    [Fact]
    public void In_memory_checks_name_the_index()
    {
        var gt = CocoJsonLoader.LoadGroundTruth(Write("gt.json", GoodGt));
        var e = Fails(() => new CocoEvaluator(gt).Evaluate([new CocoDetection(1, 7, 0, 0, 1, 1, 0.5), new CocoDetection(9, 7, 0, 0, 1, 1, 0.5)]));
        Has(e, "detections[1]: detection for unknown image_id 9");
        e = Fails(() => new CocoEvaluator(gt).Evaluate([new CocoDetection(1, 7, 0, 0, 1, 1, double.NaN)]));
        Has(e, "score NaN is not finite");
    }
}
