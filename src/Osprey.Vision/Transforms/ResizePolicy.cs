namespace Osprey.Vision.Transforms;

/// <summary>How an image is resized before the network, and what its batch is padded to.</summary>
public enum ResizeKind
{
    /// <summary>torchvision GeneralizedRCNNTransform: scale = min(min_size / shorter, max_size / longer) in float32, size = floor(side * scale).</summary>
    Torchvision,
    /// <summary>NVIDIA ODTK: ratio = resize / shorter, capped so the longer side is at most max_size; size = int(ratio * side).</summary>
    Odtk,
    /// <summary>A fixed size (SSD300: 300x300), aspect ratio not kept.</summary>
    Fixed,
    /// <summary>No resizing (the images were sized before, e.g. by training's per-image jitter); only padding.</summary>
    Keep,
}

/// <param name="MinSize">Target of the shorter side (or the fixed height).</param>
/// <param name="MaxSize">Cap of the longer side (or the fixed width).</param>
/// <param name="SizeDivisible">Batches are padded at the bottom/right to multiples of this.</param>
public sealed record ResizePolicy(ResizeKind Kind, int MinSize, int MaxSize, int SizeDivisible)
{
    /// <summary>torchvision RetinaNet: 800 / 1333, padded to 32.</summary>
    public static ResizePolicy RetinaNetTorchvision { get; } = new(ResizeKind.Torchvision, 800, 1333, 32);

    /// <summary>ODTK: 800 / 1333, padded to its 128-pixel stride.</summary>
    public static ResizePolicy RetinaNetOdtk { get; } = new(ResizeKind.Odtk, 800, 1333, 128);

    /// <summary>SSD300: 300 x 300, no padding.</summary>
    public static ResizePolicy Ssd300 { get; } = new(ResizeKind.Fixed, 300, 300, 1);

    public void Validate()
    {
        if (MinSize <= 0 || MaxSize <= 0 || SizeDivisible <= 0)
            throw new ArgumentException($"resize policy {this}: sizes and divisor must be positive");
        if (Kind != ResizeKind.Fixed && MaxSize < MinSize)
            throw new ArgumentException($"resize policy {this}: max size {MaxSize} is below min size {MinSize}");
    }

    /// <summary>The resized (unpadded) height and width of an image of the given size.</summary>
    public (int Height, int Width) Resized(int height, int width)
    {
        if (height <= 0 || width <= 0) throw new ArgumentException($"resize: image size {width}x{height} must be positive");
        switch (Kind)
        {
            case ResizeKind.Fixed:
                return (MinSize, MaxSize);
            case ResizeKind.Keep:
                return (height, width);
            case ResizeKind.Torchvision:
            {
                // torch: self_min_size / min_size is Tensor.__rtruediv__ = reciprocal(t) * scalar, in float32
                float shorter = Math.Min(height, width), longer = Math.Max(height, width);
                float scale = MathF.Min(1f / shorter * MinSize, 1f / longer * MaxSize);
                return ((int)Math.Floor(height * (double)scale), (int)Math.Floor(width * (double)scale));
            }
            default:
            {
                double ratio = (double)MinSize / Math.Min(height, width);
                if (ratio * Math.Max(height, width) > MaxSize) ratio = (double)MaxSize / Math.Max(height, width);
                return ((int)(ratio * height), (int)(ratio * width));
            }
        }
    }

    /// <summary>A size rounded up to <see cref="SizeDivisible"/>.</summary>
    public int Padded(int size) => (size + SizeDivisible - 1) / SizeDivisible * SizeDivisible;
}
