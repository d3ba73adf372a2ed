namespace Osprey.Detection.Boxes;

/// <summary>
/// NVIDIA ODTK's RetinaNet anchors (odtk/box.py generate_anchors, odtk/model.py defaults): per level of stride s,
/// cell anchors for ratios (1, 2, 0.5) and scales 4 * 2^(i/3), scale-major (anchor a = scale * 3 + ratio), computed in
/// float32 as ws = sqrt(s * s / ratio), (w, h) = (ws, ws * ratio), corners 0.5 * (s -/+ (w, h) * scale); shifted to
/// every location by (x * s, y * s). Corners are ODTK's inclusive pixel corners (width = x2 - x1 + 1 when decoded).
/// Locations are row-major and a location's anchors together, the order of Osprey's head outputs.
/// </summary>
public sealed class OdtkAnchors
{
    private readonly float[] _ratios, _scales;

    public OdtkAnchors(float[] ratios, float[] scales)
    {
        ArgumentNullException.ThrowIfNull(ratios);
        ArgumentNullException.ThrowIfNull(scales);
        if (ratios.Length == 0 || scales.Length == 0) throw new ArgumentException("odtk anchors: ratios and scales must not be empty");
        _ratios = ratios;
        _scales = scales;
    }

    /// <summary>ODTK's defaults: ratios [1.0, 2.0, 0.5], scales [4 * 2^(i/3) for i in 0..2] (float32 of the Python doubles).</summary>
    public static OdtkAnchors Default() => new([1f, 2f, 0.5f], [(float)(4 * Math.Pow(2, 0 / 3.0)), (float)(4 * Math.Pow(2, 1 / 3.0)), (float)(4 * Math.Pow(2, 2 / 3.0))]);

    public int AnchorsPerLocation => _ratios.Length * _scales.Length;

    /// <summary>The cell anchors of one stride, 4 floats each, in ODTK's order.</summary>
    public float[] Cell(int stride)
    {
        if (stride <= 0) throw new ArgumentException($"odtk anchors: stride {stride} must be positive");
        var cell = new float[AnchorsPerLocation * 4];
        float s = stride;
        int k = 0;
        foreach (float scale in _scales)
            foreach (float ratio in _ratios)
            {
                float ws = MathF.Sqrt(s * s / ratio);
                float w = ws, h = ws * ratio;
                cell[k++] = 0.5f * (s - w * scale);
                cell[k++] = 0.5f * (s - h * scale);
                cell[k++] = 0.5f * (s + w * scale);
                cell[k++] = 0.5f * (s + h * scale);
            }
        return cell;
    }

    /// <summary>ODTK's stride of a level: input width // grid width (ODTK uses the width for both axes).</summary>
    public static int Stride(ImageSize input, ImageSize grid)
    {
        if (grid.Width <= 0 || grid.Height <= 0 || input.Width < grid.Width)
            throw new ArgumentException($"odtk anchors: grid {grid} does not fit input {input}");
        return input.Width / grid.Width;
    }

    /// <summary>Anchors of every level for a padded input, concatenated (level, row, column, anchor), 4 floats each.</summary>
    public float[] Generate(ImageSize input, ReadOnlySpan<ImageSize> grids)
    {
        int n = 0;
        foreach (var g in grids) n = checked(n + g.Height * g.Width * AnchorsPerLocation);
        var anchors = new float[n * 4];
        int k = 0;
        foreach (var g in grids)
        {
            int stride = Stride(input, g);
            var cell = Cell(stride);
            for (int y = 0; y < g.Height; y++)
                for (int x = 0; x < g.Width; x++)
                {
                    float gx = x * stride, gy = y * stride;
                    for (int a = 0; a < cell.Length; a += 4)
                    {
                        anchors[k++] = gx + cell[a];
                        anchors[k++] = gy + cell[a + 1];
                        anchors[k++] = gx + cell[a + 2];
                        anchors[k++] = gy + cell[a + 3];
                    }
                }
        }
        return anchors;
    }
}
