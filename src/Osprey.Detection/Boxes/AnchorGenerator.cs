namespace Osprey.Detection.Boxes;

/// <summary>
/// RetinaNet anchors as torchvision 0.14's <c>AnchorGenerator</c>: per level, zero-centred cell anchors
/// (one per aspect ratio x size, ratio-major, rounded half to even) shifted to every grid location
/// (row-major, all cell anchors of a location together). Boxes are x1, y1, x2, y2 in input pixels.
/// </summary>
public sealed class AnchorGenerator
{
    private readonly float[][] _cells;

    /// <param name="sizes">Anchor sizes per level.</param>
    /// <param name="aspectRatios">Aspect ratios (height / width) per level.</param>
    public AnchorGenerator(IReadOnlyList<float[]> sizes, IReadOnlyList<float[]> aspectRatios)
    {
        ArgumentNullException.ThrowIfNull(sizes);
        ArgumentNullException.ThrowIfNull(aspectRatios);
        if (sizes.Count != aspectRatios.Count)
            throw new ArgumentException($"anchor generator: {sizes.Count} size lists but {aspectRatios.Count} aspect-ratio lists");
        _cells = new float[sizes.Count][];
        for (int l = 0; l < sizes.Count; l++) _cells[l] = CellAnchors(sizes[l], aspectRatios[l]);
    }

    /// <summary>torchvision's RetinaNet anchors: sizes (x, int(x 2^(1/3)), int(x 2^(2/3))) for x = 32..512, ratios 0.5, 1, 2.</summary>
    public static AnchorGenerator RetinaNet() => RetinaNet(32);

    /// <summary>RetinaNet's anchors with x = <paramref name="smallest"/> on P3, doubling per level up to P7 (torchvision's: 32).</summary>
    public static AnchorGenerator RetinaNet(int smallest)
    {
        if (smallest < 1 || smallest > 1 << 20) throw new ArgumentOutOfRangeException(nameof(smallest), $"anchor generator: smallest anchor size {smallest} must be 1..2^20");
        var sizes = new float[5][];
        var ratios = new float[5][];
        for (int l = 0; l < 5; l++)
        {
            int x = smallest << l;
            sizes[l] = [x, (int)(x * Math.Pow(2, 1.0 / 3)), (int)(x * Math.Pow(2, 2.0 / 3))];
            ratios[l] = [0.5f, 1f, 2f];
        }
        return new AnchorGenerator(sizes, ratios);
    }

    public int Levels => _cells.Length;

    /// <summary>Anchors per grid location of a level.</summary>
    public int AnchorsPerLocation(int level) => _cells[level].Length / 4;

    /// <summary>The zero-centred anchors of a level, 4 floats each.</summary>
    public ReadOnlySpan<float> CellAnchors(int level) => _cells[level];

    /// <summary>float32 arithmetic in torchvision's order: w = size / sqrt(ratio), h = size * sqrt(ratio), corners = round(±w/2, ±h/2).</summary>
    private static float[] CellAnchors(float[] sizes, float[] ratios)
    {
        var cell = new float[sizes.Length * ratios.Length * 4];
        int k = 0;
        foreach (float r in ratios)
        {
            float hr = MathF.Sqrt(r);
            float wr = 1f / hr;
            foreach (float s in sizes)
            {
                float w = wr * s, h = hr * s;
                cell[k++] = MathF.Round(-w / 2, MidpointRounding.ToEven);
                cell[k++] = MathF.Round(-h / 2, MidpointRounding.ToEven);
                cell[k++] = MathF.Round(w / 2, MidpointRounding.ToEven);
                cell[k++] = MathF.Round(h / 2, MidpointRounding.ToEven);
            }
        }
        return cell;
    }

    /// <summary>Number of anchors for the given grids (height, width per level).</summary>
    public int Count(ReadOnlySpan<ImageSize> grids)
    {
        CheckLevels(grids.Length);
        int n = 0;
        for (int l = 0; l < grids.Length; l++) n = checked(n + grids[l].Height * grids[l].Width * AnchorsPerLocation(l));
        return n;
    }

    /// <summary>
    /// Writes the anchors of every level, concatenated, for a (padded) input of <paramref name="image"/> size.
    /// A level's stride is image size // grid size, as torchvision computes it.
    /// </summary>
    public void Generate(ImageSize image, ReadOnlySpan<ImageSize> grids, Span<float> anchors)
    {
        int n = Count(grids);
        if (anchors.Length != n * 4)
            throw new ArgumentException($"anchor generator: output holds {anchors.Length} floats, {n} anchors need {n * 4}");
        int k = 0;
        for (int l = 0; l < grids.Length; l++)
        {
            var g = grids[l];
            if (g.Height <= 0 || g.Width <= 0)
                throw new ArgumentException($"anchor generator: level {l} has an empty grid {g}");
            int sy = image.Height / g.Height, sx = image.Width / g.Width;
            ReadOnlySpan<float> cell = _cells[l];
            for (int y = 0; y < g.Height; y++)
                for (int x = 0; x < g.Width; x++)
                {
                    float cx = x * sx, cy = y * sy;
                    for (int a = 0; a < cell.Length; a += 4)
                    {
                        anchors[k++] = cx + cell[a];
                        anchors[k++] = cy + cell[a + 1];
                        anchors[k++] = cx + cell[a + 2];
                        anchors[k++] = cy + cell[a + 3];
                    }
                }
        }
    }

    public float[] Generate(ImageSize image, ReadOnlySpan<ImageSize> grids)
    {
        var a = new float[Count(grids) * 4];
        Generate(image, grids, a);
        return a;
    }

    private void CheckLevels(int levels)
    {
        if (levels != _cells.Length)
            throw new ArgumentException($"anchor generator: {levels} feature levels given, configured for {_cells.Length}");
    }
}
