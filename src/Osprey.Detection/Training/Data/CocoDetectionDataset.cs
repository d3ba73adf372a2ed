using Osprey.Detection.Evaluation;
using Osprey.Vision.Codecs;
using Osprey.Vision.Imaging;

namespace Osprey.Detection.Training.Data;

/// <summary>How COCO category ids become class indices.</summary>
public enum LabelMapping
{
    /// <summary>label = category_id (torchvision's pretrained detectors: 91 classes indexed by COCO id).</summary>
    CategoryId,
    /// <summary>label = position of the category in the file's categories list, 0..K-1 (ODTK; RetinaNet trained from scratch).</summary>
    Contiguous,
    /// <summary>label = position + 1, 1..K, with 0 left for background (SSD).</summary>
    ContiguousFromOne,
}

/// <summary>Settings of <see cref="CocoDetectionDataset"/>.</summary>
/// <param name="Labels">Category id to class index mapping.</param>
/// <param name="SkipImagesWithoutBoxes">Leave out images left with no box (torchvision's references do so for training).</param>
/// <param name="CheckImageSize">Refuse an image whose decoded size differs from the JSON's width and height.</param>
public sealed record CocoDatasetOptions(LabelMapping Labels = LabelMapping.Contiguous, bool SkipImagesWithoutBoxes = false, bool CheckImageSize = true);

/// <summary>One decoded training sample: the RGB image, its boxes (x1, y1, x2, y2 in pixels) and class indices.</summary>
public sealed record DetectionSample(RgbImage Image, float[] Boxes, int[] Labels, long ImageId, string Path)
{
    public DetectionTarget Target => new(Boxes, Labels);
}

/// <summary>A sample that could not be loaded; the message names the file and the problem.</summary>
public sealed class DatasetException : Core.OspreyException
{
    public DatasetException() { }
    public DatasetException(string message) : base(message) { }
    public DatasetException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// A COCO-format detection dataset read as torchvision's detection references do: crowd annotations are dropped, boxes
/// [x, y, w, h] become [x1, y1, x2, y2] clamped to the image, and boxes left with no width or height are dropped. Images are
/// decoded (JPEG/PNG) when a sample is asked for, so a loader can spread decoding over threads.
/// </summary>
public sealed class CocoDetectionDataset
{
    private readonly Entry[] _entries;

    public string ImageDirectory { get; }
    public CocoGroundTruth GroundTruth { get; }
    public CocoDatasetOptions Options { get; }

    /// <summary>Category names by class index (for CategoryId mapping: index = id, unnamed ids are empty strings).</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Number of classes a head needs for these labels (CategoryId: max id + 1; ContiguousFromOne: K + 1).</summary>
    public int NumClasses => ClassNames.Count;

    public int Count => _entries.Length;

    private readonly record struct Entry(CocoImage Image, float[] Boxes, int[] Labels);

    public CocoDetectionDataset(string annotationsPath, string imageDirectory, CocoDatasetOptions? options = null)
        : this(CocoJsonLoader.LoadGroundTruth(annotationsPath), imageDirectory, options) { }

    public CocoDetectionDataset(CocoGroundTruth groundTruth, string imageDirectory, CocoDatasetOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(groundTruth);
        ArgumentNullException.ThrowIfNull(imageDirectory);
        if (!Directory.Exists(imageDirectory)) throw new DirectoryNotFoundException($"dataset: image folder {imageDirectory} does not exist");
        GroundTruth = groundTruth;
        ImageDirectory = imageDirectory;
        Options = options ?? new CocoDatasetOptions();
        var classOf = new Dictionary<long, int>();
        var names = new List<string>();
        var cats = groundTruth.Categories;
        if (Options.Labels == LabelMapping.CategoryId)
        {
            long max = 0;
            foreach (var c in cats)
            {
                if (c.Id < 0 || c.Id > 100_000) throw new DatasetException($"dataset: category id {c.Id} cannot be a class index (use contiguous labels)");
                max = Math.Max(max, c.Id);
            }
            for (int i = 0; i <= max; i++) names.Add("");
            foreach (var c in cats) { classOf[c.Id] = (int)c.Id; names[(int)c.Id] = c.Name; }
        }
        else
        {
            int first = Options.Labels == LabelMapping.ContiguousFromOne ? 1 : 0;
            if (first == 1) names.Add("__background__");
            for (int i = 0; i < cats.Count; i++) { classOf[cats[i].Id] = i + first; names.Add(cats[i].Name); }
        }
        ClassNames = names;

        var byImage = new Dictionary<long, List<CocoAnnotation>>();
        foreach (var a in groundTruth.Annotations)
        {
            if (a.IsCrowd) continue;
            if (!byImage.TryGetValue(a.ImageId, out var list)) byImage[a.ImageId] = list = [];
            list.Add(a);
        }
        var entries = new List<Entry>(groundTruth.Images.Count);
        foreach (var img in groundTruth.Images)
        {
            var boxes = new List<float>();
            var labels = new List<int>();
            if (byImage.TryGetValue(img.Id, out var anns))
                foreach (var a in anns)
                {
                    // torchvision ConvertCocoPolysToMask: xywh -> xyxy in float32, clamp to the image, keep x2 > x1 and y2 > y1
                    float x1 = Math.Clamp((float)a.X, 0, img.Width), y1 = Math.Clamp((float)a.Y, 0, img.Height);
                    float x2 = Math.Clamp((float)a.X + (float)a.W, 0, img.Width), y2 = Math.Clamp((float)a.Y + (float)a.H, 0, img.Height);
                    if (!(x2 > x1 && y2 > y1)) continue;
                    boxes.AddRange([x1, y1, x2, y2]);
                    labels.Add(classOf[a.CategoryId]);
                }
            if (labels.Count == 0 && Options.SkipImagesWithoutBoxes) continue;
            entries.Add(new Entry(img, boxes.ToArray(), labels.ToArray()));
        }
        _entries = entries.ToArray();
    }

    /// <summary>The image record of sample <paramref name="index"/>.</summary>
    public CocoImage ImageAt(int index) => _entries[CheckIndex(index)].Image;

    /// <summary>The boxes and labels of sample <paramref name="index"/> without decoding its image (copies).</summary>
    public DetectionTarget TargetAt(int index)
    {
        var e = _entries[CheckIndex(index)];
        return new DetectionTarget((float[])e.Boxes.Clone(), (int[])e.Labels.Clone());
    }

    /// <summary>Decodes sample <paramref name="index"/>. Throws <see cref="DatasetException"/> naming the file on a missing,
    /// unreadable or damaged image, or one whose size disagrees with the annotations.</summary>
    public DetectionSample Load(int index)
    {
        var e = _entries[CheckIndex(index)];
        string path = Path.Combine(ImageDirectory, e.Image.FileName);
        RgbImage image;
        try
        {
            if (!File.Exists(path)) throw new DatasetException($"{path}: image {e.Image.Id} of the annotations is missing");
            image = ImageDecoder.Decode(path);
        }
        catch (ImageDecodeException x)
        {
            throw new DatasetException($"{path}: image {e.Image.Id} cannot be decoded: {x.Message}", x);
        }
        if (Options.CheckImageSize && (image.Width != e.Image.Width || image.Height != e.Image.Height))
            throw new DatasetException($"{path}: decoded size {image.Width}x{image.Height} but the annotations say {e.Image.Width}x{e.Image.Height}");
        return new DetectionSample(image, (float[])e.Boxes.Clone(), (int[])e.Labels.Clone(), e.Image.Id, path);
    }

    private int CheckIndex(int index) =>
        (uint)index < (uint)_entries.Length ? index : throw new ArgumentOutOfRangeException(nameof(index), $"dataset: sample {index} outside 0..{_entries.Length - 1}");
}
