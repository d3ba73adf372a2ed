namespace Osprey.Detection.Evaluation;

/// <summary>One image of a COCO ground-truth set.</summary>
public readonly record struct CocoImage(long Id, int Width, int Height, string FileName);

/// <summary>One category of a COCO ground-truth set.</summary>
public readonly record struct CocoCategory(long Id, string Name, string Supercategory);

/// <summary>A ground-truth box: [X, Y, W, H] in pixels, the annotation's own <see cref="Area"/> (which COCOeval uses for
/// the area ranges, not W*H) and the crowd flag. COCOeval ignores a ground truth exactly when it is a crowd.</summary>
public readonly record struct CocoAnnotation(long Id, long ImageId, long CategoryId, double X, double Y, double W, double H, double Area, bool IsCrowd);

/// <summary>A detection: image, category, box [X, Y, W, H] in pixels and confidence. Its area is W*H, as in loadRes.</summary>
public readonly record struct CocoDetection(long ImageId, long CategoryId, double X, double Y, double W, double H, double Score);

/// <summary>A validated COCO ground-truth set (images, categories, box annotations).</summary>
public sealed class CocoGroundTruth
{
    public IReadOnlyList<CocoImage> Images { get; }
    public IReadOnlyList<CocoCategory> Categories { get; }
    public IReadOnlyList<CocoAnnotation> Annotations => _annotations;
    internal CocoAnnotation[] AnnotationArray => _annotations;

    private readonly CocoAnnotation[] _annotations;
    private readonly HashSet<long> _imageIds;
    private readonly HashSet<long> _categoryIds;

    /// <summary>Builds a set and checks it: unique image, category and annotation ids, annotations that name known images
    /// and categories, non-negative sizes and areas, finite numbers. Throws <see cref="CocoFormatException"/>.</summary>
    public CocoGroundTruth(IReadOnlyList<CocoImage> images, IReadOnlyList<CocoCategory> categories, IReadOnlyList<CocoAnnotation> annotations)
        : this(images, categories, annotations, null, null) { }

    internal CocoGroundTruth(IReadOnlyList<CocoImage> images, IReadOnlyList<CocoCategory> categories, IReadOnlyList<CocoAnnotation> annotations,
        Func<int, string>? annotationPlace, Func<int, string>? imagePlace)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(categories);
        ArgumentNullException.ThrowIfNull(annotations);
        annotationPlace ??= i => $"annotations[{i}]";
        imagePlace ??= i => $"images[{i}]";
        _imageIds = new HashSet<long>(images.Count);
        for (int i = 0; i < images.Count; i++)
        {
            if (!_imageIds.Add(images[i].Id)) throw new CocoFormatException($"{imagePlace(i)}: duplicate image id {images[i].Id}");
            if (images[i].Width < 0 || images[i].Height < 0)
                throw new CocoFormatException($"{imagePlace(i)}: negative size {images[i].Width}x{images[i].Height} for image {images[i].Id}");
        }
        _categoryIds = new HashSet<long>(categories.Count);
        for (int i = 0; i < categories.Count; i++)
            if (!_categoryIds.Add(categories[i].Id)) throw new CocoFormatException($"categories[{i}]: duplicate category id {categories[i].Id}");
        var annIds = new HashSet<long>(annotations.Count);
        _annotations = new CocoAnnotation[annotations.Count];
        for (int i = 0; i < annotations.Count; i++)
        {
            var a = annotations[i];
            if (!annIds.Add(a.Id)) throw new CocoFormatException($"{annotationPlace(i)}: duplicate annotation id {a.Id}");
            if (!_imageIds.Contains(a.ImageId)) throw new CocoFormatException($"{annotationPlace(i)}: annotation {a.Id} names unknown image_id {a.ImageId}");
            if (!_categoryIds.Contains(a.CategoryId)) throw new CocoFormatException($"{annotationPlace(i)}: annotation {a.Id} names unknown category_id {a.CategoryId}");
            CheckBox(a.X, a.Y, a.W, a.H, annotationPlace, i);
            if (!double.IsFinite(a.Area) || a.Area < 0) throw new CocoFormatException($"{annotationPlace(i)}: area {a.Area} is negative or not finite");
            _annotations[i] = a;
        }
        Images = images.ToArray();
        Categories = categories.ToArray();
    }

    public bool HasImage(long id) => _imageIds.Contains(id);
    public bool HasCategory(long id) => _categoryIds.Contains(id);

    /// <summary>Checks detections against this set (known image and category, finite score, non-negative box size).</summary>
    public void CheckDetections(ReadOnlySpan<CocoDetection> detections) => CheckDetections(detections, null);

    internal void CheckDetections(ReadOnlySpan<CocoDetection> detections, Func<int, string>? place)
    {
        place ??= i => $"detections[{i}]";
        for (int i = 0; i < detections.Length; i++)
        {
            ref readonly var d = ref detections[i];
            if (!_imageIds.Contains(d.ImageId)) throw new CocoFormatException($"{place(i)}: detection for unknown image_id {d.ImageId}");
            if (!_categoryIds.Contains(d.CategoryId)) throw new CocoFormatException($"{place(i)}: detection for unknown category_id {d.CategoryId}");
            CheckBox(d.X, d.Y, d.W, d.H, place, i);
            if (!double.IsFinite(d.Score)) throw new CocoFormatException($"{place(i)}: score {d.Score} is not finite");
        }
    }

    private static void CheckBox(double x, double y, double w, double h, Func<int, string> place, int i)
    {
        if (!double.IsFinite(x) || !double.IsFinite(y) || !double.IsFinite(w) || !double.IsFinite(h))
            throw new CocoFormatException($"{place(i)}: bbox [{x}, {y}, {w}, {h}] has a non-finite number");
        if (w < 0 || h < 0) throw new CocoFormatException($"{place(i)}: bbox [{x}, {y}, {w}, {h}] has a negative width or height");
    }
}

/// <summary>A COCO file or in-memory set that cannot be evaluated; the message names the file and place.</summary>
public sealed class CocoFormatException : Osprey.Core.OspreyException
{
    public CocoFormatException() { }
    public CocoFormatException(string message) : base(message) { }
    public CocoFormatException(string message, Exception inner) : base(message, inner) { }
}
