namespace Osprey.Detection.Boxes;

/// <summary>One detected object: corners (x1, y1, x2, y2) in pixels, a score and a class label.</summary>
/// <remarks>The label is the model's class index (torchvision's COCO models use COCO category ids directly).</remarks>
public readonly record struct DetectedObject(float X1, float Y1, float X2, float Y2, float Score, int Label)
{
    public float Width => X2 - X1;
    public float Height => Y2 - Y1;
}

/// <summary>Height and width of an image in pixels.</summary>
public readonly record struct ImageSize(int Height, int Width)
{
    public override string ToString() => $"{Width}x{Height}";
}
