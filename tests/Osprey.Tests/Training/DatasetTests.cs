using Osprey.Detection.Evaluation;
using Osprey.Detection.Training.Data;
using Osprey.Tests.Support;
using Osprey.Vision.Imaging;

namespace Osprey.Tests.Training;

public sealed class DatasetTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("osprey-dataset-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteSet(string annotations)
    {
        Directory.CreateDirectory(Path.Combine(_dir, "img"));
        PngEncoder.Save(new RgbImage(40, 30, Rgb8.Gray), Path.Combine(_dir, "img", "a.png"));
        PngEncoder.Save(new RgbImage(20, 20, Rgb8.Gray), Path.Combine(_dir, "img", "b.png"));
        File.WriteAllBytes(Path.Combine(_dir, "img", "bad.png"), [0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3]);
        string path = Path.Combine(_dir, "ann.json");
        File.WriteAllText(path, annotations);
        return path;
    }

    private const string Json = """
        {"images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30},
                    {"id": 2, "file_name": "b.png", "width": 20, "height": 20},
                    {"id": 3, "file_name": "missing.png", "width": 10, "height": 10},
                    {"id": 4, "file_name": "bad.png", "width": 10, "height": 10},
                    {"id": 5, "file_name": "a.png", "width": 41, "height": 30}],
         "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}],
         "annotations": [
           {"id": 1, "image_id": 1, "category_id": 7, "bbox": [2, 3, 10, 5], "area": 50, "iscrowd": 0},
           {"id": 2, "image_id": 1, "category_id": 3, "bbox": [30, 20, 20, 20], "area": 400, "iscrowd": 0},
           {"id": 3, "image_id": 1, "category_id": 3, "bbox": [5, 5, 10, 10], "area": 100, "iscrowd": 1},
           {"id": 4, "image_id": 1, "category_id": 7, "bbox": [4, 4, 0, 6], "area": 0, "iscrowd": 0},
           {"id": 5, "image_id": 2, "category_id": 3, "bbox": [-4, 1, 6, 6], "area": 36, "iscrowd": 0}]}
        """;

    [Fact]
    public void Crowd_dropped_boxes_clamped_and_degenerate_removed_as_torchvision_references()
    {
        var ds = new CocoDetectionDataset(WriteSet(Json), Path.Combine(_dir, "img"));
        Assert.Equal(5, ds.Count);
        var a = ds.Load(0);
        Assert.Equal(new float[] { 2, 3, 12, 8, 30, 20, 40, 30 }, a.Boxes);   // crowd and zero-width dropped, clamped to 40x30
        Assert.Equal(new[] { 0, 1 }, a.Labels);                              // contiguous in the file's category order
        Assert.Equal((40, 30), (a.Image.Width, a.Image.Height));
        Assert.Equal(new float[] { 0, 1, 2, 7 }, ds.Load(1).Boxes);
        Assert.Equal(new[] { "cat", "dog" }, ds.ClassNames);
    }

    [Fact]
    public void Label_mappings_and_skipping_empty_images()
    {
        string path = WriteSet(Json);
        var byId = new CocoDetectionDataset(path, Path.Combine(_dir, "img"), new CocoDatasetOptions(LabelMapping.CategoryId));
        Assert.Equal(new[] { 7, 3 }, byId.TargetAt(0).Labels);
        Assert.Equal(8, byId.NumClasses);
        var ssd = new CocoDetectionDataset(path, Path.Combine(_dir, "img"), new CocoDatasetOptions(LabelMapping.ContiguousFromOne, SkipImagesWithoutBoxes: true));
        Assert.Equal(new[] { 1, 2 }, ssd.TargetAt(0).Labels);
        Assert.Equal(3, ssd.NumClasses);
        Assert.Equal(2, ssd.Count);
    }

    [Fact]
    public void Missing_damaged_and_mis_sized_images_name_the_file()
    {
        var ds = new CocoDetectionDataset(WriteSet(Json), Path.Combine(_dir, "img"));
        Assert.Contains("missing.png", Assert.Throws<DatasetException>(() => ds.Load(2)).Message);
        var bad = Assert.Throws<DatasetException>(() => ds.Load(3));
        Assert.Contains("bad.png", bad.Message);
        Assert.Contains("41x30", Assert.Throws<DatasetException>(() => ds.Load(4)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ds.Load(5));
        Assert.Throws<DirectoryNotFoundException>(() => new CocoDetectionDataset(Path.Combine(_dir, "ann.json"), Path.Combine(_dir, "nope")));
    }

    /// <summary>coco128: 939 annotations, 10 crowd; torchvision's conversion keeps 929 boxes and leaves 2 images empty
    /// (counted with the same rules in numpy).</summary>
    [Fact]
    public void Coco128_loads_through_the_threaded_loader()
    {
        string root = RepoPaths.Shared("data", "coco128");
        var ds = new CocoDetectionDataset(Path.Combine(root, "annotations", "instances_train2017.json"), Path.Combine(root, "train2017"));
        Assert.Equal(128, ds.Count);
        Assert.Equal(929, Enumerable.Range(0, ds.Count).Sum(i => ds.TargetAt(i).Count));
        Assert.Equal(2, Enumerable.Range(0, ds.Count).Count(i => ds.TargetAt(i).Count == 0));
        var loader = new DataLoader<DetectionSample>(16, (i, rng) => Augment.Apply(ds.Load(i), new AugmentOptions { JitterMin = 96, JitterMax = 160, MaxSize = 200, FlipProbability = 0.5, CropProbability = 0.5 }, rng),
            new LoaderOptions(4, 2, 8, Seed: 3));
        int n = 0;
        foreach (var batch in loader.Epoch(0))
            foreach (var s in batch)
            {
                AugmentTests.AssertValid(s, s.Path);
                Assert.True(Math.Max(s.Image.Width, s.Image.Height) <= 200);
                n++;
            }
        Assert.Equal(16, n);
    }
}

public sealed class SyntheticShapesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("osprey-shapes-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Generated_set_is_valid_coco_and_its_ground_truth_scores_map_1()
    {
        var set = SyntheticShapes.Generate(Path.Combine(_dir, "a"), new SyntheticShapesOptions(Images: 24, MinSize: 64, MaxSize: 96, Seed: 4));
        var gt = CocoJsonLoader.LoadGroundTruth(set.AnnotationsPath);
        Assert.Equal(24, gt.Images.Count);
        Assert.Equal(set.Objects, gt.Annotations.Count);
        Assert.Equal(3, gt.Annotations.Select(a => a.CategoryId).Distinct().Count());
        var dets = gt.Annotations.Select(a => new CocoDetection(a.ImageId, a.CategoryId, a.X, a.Y, a.W, a.H, 0.9)).ToArray();
        var result = new CocoEvaluator(gt).Evaluate(dets);
        Assert.Equal(1.0, result.AP, 1e-12);
        var ds = new CocoDetectionDataset(gt, set.ImageDirectory);
        for (int i = 0; i < ds.Count; i++)
        {
            var s = ds.Load(i);
            Assert.InRange(s.Image.Width, 64, 96);
            Assert.NotEmpty(s.Labels);
            AugmentTests.AssertValid(s, s.Path);
            // tight boxes: each box edge row/column holds shape pixels, i.e. saturated colours the muted background never has
            for (int b = 0; b < s.Labels.Length; b++)
            {
                int x0 = (int)s.Boxes[4 * b], y0 = (int)s.Boxes[4 * b + 1], x1 = (int)s.Boxes[4 * b + 2] - 1, y1 = (int)s.Boxes[4 * b + 3] - 1;
                Assert.True(Enumerable.Range(x0, x1 - x0 + 1).Any(x => Saturated(s.Image[x, y0])), $"{s.Path} box {b}: top edge has no shape pixel");
                Assert.True(Enumerable.Range(y0, y1 - y0 + 1).Any(y => Saturated(s.Image[x0, y])), $"{s.Path} box {b}: left edge has no shape pixel");
            }
        }
    }

    private static bool Saturated(Rgb8 c) => Math.Max(c.R, Math.Max(c.G, c.B)) >= 220 && Math.Min(c.R, Math.Min(c.G, c.B)) < 40;

    [Fact]
    public void Same_seed_same_bytes_other_seed_other_bytes()
    {
        var o = new SyntheticShapesOptions(Images: 3, MinSize: 64, MaxSize: 80, Seed: 9);
        var a = SyntheticShapes.Generate(Path.Combine(_dir, "a"), o);
        var b = SyntheticShapes.Generate(Path.Combine(_dir, "b"), o);
        var c = SyntheticShapes.Generate(Path.Combine(_dir, "c"), o with { Seed = 10 });
        Assert.Equal(File.ReadAllBytes(a.AnnotationsPath), File.ReadAllBytes(b.AnnotationsPath));
        Assert.Equal(File.ReadAllBytes(Path.Combine(a.ImageDirectory, "00000.png")), File.ReadAllBytes(Path.Combine(b.ImageDirectory, "00000.png")));
        Assert.NotEqual(File.ReadAllBytes(Path.Combine(a.ImageDirectory, "00000.png")), File.ReadAllBytes(Path.Combine(c.ImageDirectory, "00000.png")));
        Assert.Throws<ArgumentException>(() => SyntheticShapes.Generate(_dir, o with { MinSize = 8 }));
    }
}
