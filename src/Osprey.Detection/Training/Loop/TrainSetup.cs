using Osprey.Core.IO;
using Osprey.Core.Ops;
using Osprey.Detection.Models;
using Osprey.Detection.Training.Data;

namespace Osprey.Detection.Training.Loop;

/// <summary>How a run starts: resumed from its own checkpoint, fine-tuned from other weights, or from scratch.</summary>
public static class TrainSetup
{
    /// <summary>Training data with labels = COCO category ids (images without boxes skipped).</summary>
    public static CocoDetectionDataset Dataset(string annotations, string images) =>
        new(annotations, images, new CocoDatasetOptions(LabelMapping.CategoryId, SkipImagesWithoutBoxes: true));

    /// <summary>Largest category id + 1 (labels are category ids, as torchvision's COCO models).</summary>
    public static int DefaultClasses(CocoDetectionDataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.GroundTruth.Categories.Count == 0) throw new ArgumentException("the annotations list no categories");
        long max = data.GroundTruth.Categories.Max(c => c.Id);
        if (max < 0 || max > 100_000) throw new ArgumentException($"category ids up to {max}: expected 0..100000 (labels are category ids)");
        return (int)max + 1;
    }

    /// <summary>
    /// Resumes from <paramref name="checkpoint"/> if it exists; else starts from <paramref name="fineTune"/>'s weights (every
    /// tensor whose name and shape match; the classification layer is re-initialised when the class count differs) or from
    /// <see cref="ModelInit.Random"/>. Returns the trainer and a line saying which.
    /// </summary>
    public static (Trainer Trainer, string How) Start(TrainOptions options, CocoDetectionDataset data, string checkpoint, string? fineTune)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (File.Exists(checkpoint))
        {
            var t = Trainer.Resume(checkpoint, options);
            return (t, $"resumed from {checkpoint} at iteration {t.Iteration}");
        }
        var arch = Architectures.Get(options.Architecture);
        int classes = options.Classes ?? DefaultClasses(data);
        using var model = arch.CreateFor(classes);
        using var init = ModelInit.Random(model, options.Seed);
        if (fineTune is null) return (Trainer.Create(options, classes, init, "random init"), $"from scratch ({classes} classes, seed {options.Seed})");
        using var source = WeightFile.Load(fineTune);
        using var merged = new StateDict();
        int copied = 0, fresh = 0;
        foreach (var (name, t) in init.Entries)
        {
            if (source.TryGet(name, out var s) && s.Shape == t.Shape) { merged.Add(name, Op.Cast(s, Core.Tensors.DType.Float32)); copied++; }
            else { merged.Add(name, t.Share()); fresh++; }
        }
        if (copied == 0) throw new ArgumentException($"--fine-tune {fineTune}: no tensor matches {arch.Name} by name and shape");
        return (Trainer.Create(options, classes, merged, fineTune), $"fine-tuning from {fineTune}: {copied} tensors copied, {fresh} initialised ({classes} classes)");
    }
}
