namespace Osprey.Detection.Boxes;

/// <summary>
/// torchvision's <c>BoxCoder.decode_single</c>: regression codes (dx, dy, dw, dh) relative to reference boxes
/// (x1, y1, x2, y2) become boxes, in float32 with torchvision's operation order. RetinaNet uses weights
/// (1, 1, 1, 1); SSD's variances 0.1/0.2 are weights (10, 10, 5, 5). dw and dh are clamped at
/// <see cref="Clip"/> (log(1000/16)) before exp.
/// </summary>
public readonly record struct BoxCoder(float Wx, float Wy, float Ww, float Wh, float Clip)
{
    /// <summary>log(1000 / 16), torchvision's bbox_xform_clip.</summary>
    public static readonly float DefaultClip = (float)Math.Log(1000.0 / 16);

    public static BoxCoder RetinaNet => new(1, 1, 1, 1, DefaultClip);
    public static BoxCoder Ssd => new(10, 10, 5, 5, DefaultClip);

    /// <summary>Decodes one box from 4 codes and its 4-float reference box into <paramref name="box"/>.</summary>
    public void DecodeOne(ReadOnlySpan<float> code, ReadOnlySpan<float> reference, Span<float> box)
    {
        float w = reference[2] - reference[0];
        float h = reference[3] - reference[1];
        float cx = reference[0] + 0.5f * w;
        float cy = reference[1] + 0.5f * h;
        float dx = code[0] / Wx, dy = code[1] / Wy;
        float dw = MathF.Min(code[2] / Ww, Clip), dh = MathF.Min(code[3] / Wh, Clip);
        float pcx = dx * w + cx, pcy = dy * h + cy;
        float hw = 0.5f * (MathF.Exp(dw) * w), hh = 0.5f * (MathF.Exp(dh) * h);
        box[0] = pcx - hw;
        box[1] = pcy - hh;
        box[2] = pcx + hw;
        box[3] = pcy + hh;
    }

    /// <summary>
    /// torchvision's <c>BoxCoder.encode_single(box, reference)</c>, the inverse of <see cref="DecodeOne"/>: codes
    /// (wx (gcx - cx) / w, wy (gcy - cy) / h, ww log(gw / w), wh log(gh / h)) in float32 with torchvision's order.
    /// </summary>
    public void EncodeOne(ReadOnlySpan<float> box, ReadOnlySpan<float> reference, Span<float> code)
    {
        float w = reference[2] - reference[0];
        float h = reference[3] - reference[1];
        float cx = reference[0] + 0.5f * w;
        float cy = reference[1] + 0.5f * h;
        float gw = box[2] - box[0];
        float gh = box[3] - box[1];
        float gcx = box[0] + 0.5f * gw;
        float gcy = box[1] + 0.5f * gh;
        code[0] = Wx * (gcx - cx) / w;
        code[1] = Wy * (gcy - cy) / h;
        code[2] = Ww * MathF.Log(gw / w);
        code[3] = Wh * MathF.Log(gh / h);
    }

    /// <summary>Encodes n boxes against n reference boxes (4 floats each) into n codes.</summary>
    public void Encode(ReadOnlySpan<float> boxes, ReadOnlySpan<float> references, Span<float> codes)
    {
        if (boxes.Length % 4 != 0 || references.Length != boxes.Length || codes.Length != boxes.Length)
            throw new ArgumentException($"box encode: {boxes.Length} box, {references.Length} reference and {codes.Length} output floats (need equal multiples of 4)");
        for (int i = 0; i < boxes.Length; i += 4)
            EncodeOne(boxes.Slice(i, 4), references.Slice(i, 4), codes.Slice(i, 4));
    }

    /// <summary>Decodes n boxes: codes and references hold 4 floats per box.</summary>
    public void Decode(ReadOnlySpan<float> codes, ReadOnlySpan<float> references, Span<float> boxes)
    {
        if (codes.Length % 4 != 0 || references.Length != codes.Length || boxes.Length != codes.Length)
            throw new ArgumentException($"box decode: {codes.Length} codes, {references.Length} reference and {boxes.Length} output floats (need equal multiples of 4)");
        for (int i = 0; i < codes.Length; i += 4)
            DecodeOne(codes.Slice(i, 4), references.Slice(i, 4), boxes.Slice(i, 4));
    }
}

/// <summary>Box helpers shared by the post-processors.</summary>
public static class BoxOps
{
    /// <summary>torchvision's clip_boxes_to_image: x into [0, width], y into [0, height] (NaN stays NaN).</summary>
    public static void ClipToImage(Span<float> box, ImageSize size)
    {
        box[0] = Clamp(box[0], size.Width);
        box[1] = Clamp(box[1], size.Height);
        box[2] = Clamp(box[2], size.Width);
        box[3] = Clamp(box[3], size.Height);
    }

    private static float Clamp(float v, float hi) => float.IsNaN(v) ? v : MathF.Min(MathF.Max(v, 0f), hi);

    /// <summary>
    /// torchvision's transform.postprocess (resize_boxes): boxes found on a <paramref name="resized"/> input go back to
    /// the <paramref name="original"/> image, scaled by original / resized per axis in float32.
    /// </summary>
    public static DetectedObject Rescale(DetectedObject d, ImageSize resized, ImageSize original)
    {
        float rh = (float)original.Height / resized.Height, rw = (float)original.Width / resized.Width;
        return d with { X1 = d.X1 * rw, Y1 = d.Y1 * rh, X2 = d.X2 * rw, Y2 = d.Y2 * rh };
    }

    /// <summary>Intersection over union of two boxes, as torchvision's nms computes it (float32).</summary>
    public static float Iou(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        float areaA = (a[2] - a[0]) * (a[3] - a[1]);
        float areaB = (b[2] - b[0]) * (b[3] - b[1]);
        float w = MathF.Max(0f, MathF.Min(a[2], b[2]) - MathF.Max(a[0], b[0]));
        float h = MathF.Max(0f, MathF.Min(a[3], b[3]) - MathF.Max(a[1], b[1]));
        float inter = w * h;
        return inter / (areaA + areaB - inter);
    }
}
