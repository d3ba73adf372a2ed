using System.Diagnostics;

namespace Osprey.Detection.Evaluation;

/// <summary>How the evaluator runs; the COCO parameters themselves are fixed (<see cref="CocoEvalParams"/>).</summary>
public sealed record CocoEvalOptions
{
    /// <summary>Threads used; -1 = all cores, 1 = the calling thread only. Results do not depend on it.</summary>
    public int MaxDegreeOfParallelism { get; init; } = -1;
}

/// <summary>COCO bbox evaluation with exactly COCOeval's semantics (evaluate + accumulate + summarize).
/// Build one per ground-truth set and call <see cref="Evaluate"/> as often as needed (e.g. at every validation step of
/// training): the ground truth is indexed once.</summary>
public sealed class CocoEvaluator
{
    private readonly CocoGroundTruth _gt;
    private readonly CocoEvalOptions _options;
    internal readonly long[] ImageIds;       // sorted, as COCOeval's params.imgIds
    internal readonly long[] CategoryIds;    // sorted, as params.catIds
    private readonly Dictionary<long, int> _imageIndex;
    private readonly Dictionary<long, int> _categoryIndex;
    internal readonly int[] GtCellStart;     // [K*I + 1]: ground truths of cell (k, i) are GtOrder[start..end]
    internal readonly int[] GtOrder;         // annotation indices grouped by cell, file order within a cell

    public CocoGroundTruth GroundTruth => _gt;

    public CocoEvaluator(CocoGroundTruth groundTruth, CocoEvalOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(groundTruth);
        _gt = groundTruth;
        _options = options ?? new CocoEvalOptions();
        ImageIds = new long[_gt.Images.Count];
        for (int i = 0; i < ImageIds.Length; i++) ImageIds[i] = _gt.Images[i].Id;
        Array.Sort(ImageIds);
        CategoryIds = new long[_gt.Categories.Count];
        for (int i = 0; i < CategoryIds.Length; i++) CategoryIds[i] = _gt.Categories[i].Id;
        Array.Sort(CategoryIds);
        _imageIndex = Index(ImageIds);
        _categoryIndex = Index(CategoryIds);
        var anns = _gt.AnnotationArray;
        var cells = new int[anns.Length];
        for (int j = 0; j < anns.Length; j++) cells[j] = Cell(anns[j].ImageId, anns[j].CategoryId);
        (GtCellStart, GtOrder) = GroupByCell(cells, CategoryIds.Length * ImageIds.Length);
    }

    /// <summary>Reads both files and evaluates; the timings include loading.</summary>
    public static CocoEvalResult EvaluateFiles(string annotationsPath, string detectionsPath, CocoEvalOptions? options = null)
    {
        var sw = Stopwatch.StartNew();
        var gt = CocoJsonLoader.LoadGroundTruth(annotationsPath);
        var dets = CocoJsonLoader.LoadDetections(detectionsPath, gt);
        double load = sw.Elapsed.TotalSeconds;
        var result = new CocoEvaluator(gt, options).Evaluate(dets);
        return result with { Timings = result.Timings with { LoadSeconds = load } };
    }

    /// <summary>Evaluates detections in memory (checked first: known image and category, finite numbers, sizes >= 0).
    /// Detections keep their order: within one image and category, equal scores rank in the order given, as in COCOeval.</summary>
    public CocoEvalResult Evaluate(ReadOnlySpan<CocoDetection> detections)
    {
        _gt.CheckDetections(detections);
        var sw = Stopwatch.StartNew();
        var cells = new int[detections.Length];
        for (int j = 0; j < detections.Length; j++) cells[j] = Cell(detections[j].ImageId, detections[j].CategoryId);
        var (dtCellStart, dtOrder) = GroupByCell(cells, CategoryIds.Length * ImageIds.Length);
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = _options.MaxDegreeOfParallelism };
        var matched = CocoMatcher.Run(this, _gt.AnnotationArray, detections.ToArray(), dtCellStart, dtOrder, parallel);
        double evaluate = sw.Elapsed.TotalSeconds;
        sw.Restart();
        var acc = CocoAccumulator.Run(matched, CategoryIds.Length, ImageIds.Length, parallel);
        double accumulate = sw.Elapsed.TotalSeconds;
        sw.Restart();
        var stats = CocoSummary.Stats(acc, CategoryIds.Length);
        double summarize = sw.Elapsed.TotalSeconds;
        var names = new string[CategoryIds.Length];
        var gtCounts = new int[CategoryIds.Length];
        foreach (var c in _gt.Categories) names[_categoryIndex[c.Id]] = c.Name;
        foreach (var a in _gt.AnnotationArray) if (!a.IsCrowd) gtCounts[_categoryIndex[a.CategoryId]]++;
        return new CocoEvalResult(stats, acc.Precision, acc.Recall, acc.Scores, CategoryIds, names, gtCounts, ImageIds.Length,
            detections.Length, new CocoEvalTimings(0, evaluate, accumulate, summarize));
    }

    private int Cell(long imageId, long categoryId) => _categoryIndex[categoryId] * ImageIds.Length + _imageIndex[imageId];

    private static Dictionary<long, int> Index(long[] sortedIds)
    {
        var d = new Dictionary<long, int>(sortedIds.Length);
        for (int i = 0; i < sortedIds.Length; i++) d[sortedIds[i]] = i;
        return d;
    }

    /// <summary>Stable counting sort of item indices by cell: returns cell starts [cells + 1] and the grouped order.</summary>
    private static (int[] Start, int[] Order) GroupByCell(int[] cellOf, int cells)
    {
        var start = new int[cells + 1];
        foreach (int c in cellOf) start[c + 1]++;
        for (int c = 0; c < cells; c++) start[c + 1] += start[c];
        var next = start.AsSpan(0, cells).ToArray();
        var order = new int[cellOf.Length];
        for (int j = 0; j < cellOf.Length; j++) order[next[cellOf[j]]++] = j;
        return (start, order);
    }
}
