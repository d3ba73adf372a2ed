namespace Osprey.Detection.Training;

/// <summary>The ground truth of one training image: <see cref="Boxes"/> holds x1, y1, x2, y2 per object (input pixels),
/// <see cref="Labels"/> the class index per object (RetinaNet: 0..K-1; SSD: 1..K-1, 0 is background).</summary>
public sealed record DetectionTarget(float[] Boxes, int[] Labels)
{
    public int Count => Labels.Length;

    /// <summary>Checks that boxes and labels agree in count and labels lie in 0..<paramref name="numClasses"/>-1.</summary>
    public void Check(int numClasses, string what)
    {
        if (Boxes.Length != Labels.Length * 4)
            throw new ArgumentException($"{what}: {Boxes.Length} box floats for {Labels.Length} labels (need 4 per label)");
        for (int i = 0; i < Labels.Length; i++)
            if ((uint)Labels[i] >= (uint)numClasses)
                throw new ArgumentException($"{what}: label {Labels[i]} of object {i} outside 0..{numClasses - 1}");
    }
}

/// <summary>The two parts of a detection loss (torchvision's loss dict: classification, bbox_regression).</summary>
public readonly record struct DetectionLoss(double Classification, double BoxRegression)
{
    public double Total => Classification + BoxRegression;
}
