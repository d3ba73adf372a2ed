using Osprey.Vision.Imaging;
using Osprey.Vision.Transforms;

namespace Osprey.Detection.Training.Data;

/// <summary>A collated batch: the network input (resized, normalised, padded, on the preprocessor's device) and each image's
/// targets in input pixels. Dispose to free the images.</summary>
public sealed class TrainingBatch(ImageBatch images, DetectionTarget[] targets) : IDisposable
{
    public ImageBatch Images { get; } = images;
    public IReadOnlyList<DetectionTarget> Targets { get; } = targets;

    /// <summary>Runs the model's transform on the samples and moves their boxes with it, as torchvision's
    /// GeneralizedRCNNTransform does in training (resize_boxes: x * (resized width / original width), y likewise, float32).</summary>
    public static TrainingBatch Collate(IReadOnlyList<DetectionSample> samples, Preprocessor preprocessor)
    {
        ArgumentNullException.ThrowIfNull(samples);
        ArgumentNullException.ThrowIfNull(preprocessor);
        var images = new RgbImage[samples.Count];
        for (int i = 0; i < images.Length; i++) images[i] = samples[i].Image;
        var batch = preprocessor.Batch(images);
        var targets = new DetectionTarget[samples.Count];
        for (int i = 0; i < targets.Length; i++)
        {
            var (oh, ow) = batch.Original[i];
            var (rh, rw) = batch.Resized[i];
            float sx = (float)rw / ow, sy = (float)rh / oh;
            var b = (float[])samples[i].Boxes.Clone();
            for (int k = 0; k < b.Length; k += 4)
            {
                b[k] *= sx; b[k + 1] *= sy; b[k + 2] *= sx; b[k + 3] *= sy;
            }
            targets[i] = new DetectionTarget(b, (int[])samples[i].Labels.Clone());
        }
        return new TrainingBatch(batch, targets);
    }

    public void Dispose() => Images.Dispose();
}
