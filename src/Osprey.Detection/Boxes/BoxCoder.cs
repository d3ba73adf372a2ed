namespace Osprey.Detection.Boxes;

/// <summary>
/// Which reference implementation's box arithmetic a <see cref="BoxCoder"/> reproduces. All three take codes
/// (dx, dy, dw, dh) and produce corner boxes (x1, y1, x2, y2); they differ in the reference-box format, the width
/// convention and how the weights apply.
/// </summary>
public enum BoxCoding
{
    /// <summary>
    /// torchvision <c>BoxCoder.decode_single</c>: references are corner boxes, w = x2 - x1, codes divided by the weights,
    /// dw/dh clamped at <see cref="BoxCoder.Clip"/>, output corners ctr -/+ w/2.
    /// </summary>
    Torchvision,

    /// <summary>
    /// NVIDIA ODTK (odtk/box.py delta2box, csrc/cuda/decode.cu): references are corner boxes in inclusive pixels,
    /// w = x2 - x1 + 1, ctr = x1 + w/2, codes divided by the weights (1 for ODTK), dw/dh clamped at Clip (ODTK: none, +inf),
    /// output x1 = ctr - w'/2, x2 = ctr + w'/2 - 1 (inclusive). Clamping to the input is the post-processor's.
    /// </summary>
    OdtkInclusive,

    /// <summary>
    /// NVIDIA DeepLearningExamples SSD (ssd/utils.py Encoder.scale_back_batch): references are (cx, cy, w, h); codes are
    /// multiplied by 1/weight (weights 10, 10, 5, 5 give DLE's scale_xy 0.1f and scale_wh 0.2f exactly), dw/dh clamped at
    /// Clip (DLE: none, +inf); cx' = dx * w + cx, w' = exp(dw) * w, output corners cx' -/+ w'/2.
    /// </summary>
    CenterSize,
}

/// <summary>
/// Box decoding: regression codes (dx, dy, dw, dh) relative to reference boxes become corner boxes (x1, y1, x2, y2), in
/// float32 with the operation order of the implementation <see cref="Coding"/> names. <see cref="BoxCoding.Torchvision"/>
/// (the default) is torchvision's <c>BoxCoder.decode_single</c>: RetinaNet uses weights (1, 1, 1, 1); SSD's variances
/// 0.1/0.2 are weights (10, 10, 5, 5); dw and dh are clamped at <see cref="Clip"/> (log(1000/16)) before exp.
/// </summary>
/// <remarks>
/// A GPU decode kernel needs exactly these six values: four weights, the clip and the coding (one small enum).
/// </remarks>
public readonly record struct BoxCoder(float Wx, float Wy, float Ww, float Wh, float Clip, BoxCoding Coding = BoxCoding.Torchvision)
{
    /// <summary>log(1000 / 16), torchvision's bbox_xform_clip.</summary>
    public static readonly float DefaultClip = (float)Math.Log(1000.0 / 16);

    public static BoxCoder RetinaNet => new(1, 1, 1, 1, DefaultClip);
    public static BoxCoder Ssd => new(10, 10, 5, 5, DefaultClip);

    /// <summary>ODTK's decode: weights 1, no clamp before exp, inclusive pixel corners.</summary>
    public static BoxCoder Odtk => new(1, 1, 1, 1, float.PositiveInfinity, BoxCoding.OdtkInclusive);

    /// <summary>NVIDIA DeepLearningExamples SSD300 v1.1: (cx, cy, w, h) default boxes, scale_xy 0.1, scale_wh 0.2, no clamp.</summary>
    public static BoxCoder NvidiaSsd => new(10, 10, 5, 5, float.PositiveInfinity, BoxCoding.CenterSize);

    /// <summary>Decodes one box from 4 codes and its 4-float reference box into <paramref name="box"/>.</summary>
    public void DecodeOne(ReadOnlySpan<float> code, ReadOnlySpan<float> reference, Span<float> box)
    {
        if (Coding == BoxCoding.Torchvision)
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
        else if (Coding == BoxCoding.OdtkInclusive)
        {
            // box.py delta2box: wh = x2 - x1 + 1, ctr = x1 + 0.5 wh, pred_ctr = d * wh + ctr, pred_wh = exp(d) * wh
            float w = reference[2] - reference[0] + 1f;
            float h = reference[3] - reference[1] + 1f;
            float cx = reference[0] + 0.5f * w;
            float cy = reference[1] + 0.5f * h;
            float pcx = code[0] / Wx * w + cx, pcy = code[1] / Wy * h + cy;
            float pw = MathF.Exp(MathF.Min(code[2] / Ww, Clip)) * w, ph = MathF.Exp(MathF.Min(code[3] / Wh, Clip)) * h;
            box[0] = pcx - 0.5f * pw;
            box[1] = pcy - 0.5f * ph;
            box[2] = pcx + 0.5f * pw - 1f;
            box[3] = pcy + 0.5f * ph - 1f;
        }
        else
        {
            // scale_back_batch: xy = (scale_xy * d) * wh0 + xy0, wh = exp(scale_wh * d) * wh0, corners xy -/+ 0.5 wh
            float pcx = code[0] * (1f / Wx) * reference[2] + reference[0];
            float pcy = code[1] * (1f / Wy) * reference[3] + reference[1];
            float pw = MathF.Exp(MathF.Min(code[2] * (1f / Ww), Clip)) * reference[2];
            float ph = MathF.Exp(MathF.Min(code[3] * (1f / Wh), Clip)) * reference[3];
            box[0] = pcx - 0.5f * pw;
            box[1] = pcy - 0.5f * ph;
            box[2] = pcx + 0.5f * pw;
            box[3] = pcy + 0.5f * ph;
        }
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
