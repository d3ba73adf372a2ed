using System.Globalization;
using System.Text.Json;

namespace Osprey.Detection.Evaluation;

/// <summary>Loads COCO instances files (ground truth) and results files (detections) with a streaming reader.
/// Errors name the file, line, column and the problem: malformed or truncated JSON, a missing field, a value of the wrong
/// kind, a detection for an unknown image or category, a negative size. Unknown fields (segmentation, info, ...) are skipped.</summary>
public static class CocoJsonLoader
{
    /// <summary>Reads a COCO instances JSON (images, categories, annotations with bbox and area).</summary>
    public static CocoGroundTruth LoadGroundTruth(string path)
    {
        using var js = new CocoJsonStream(path);
        var images = new List<CocoImage>();
        var imageOffsets = new List<long>();
        var categories = new List<CocoCategory>();
        var annotations = new List<CocoAnnotation>();
        var annotationOffsets = new List<long>();
        bool sawImages = false, sawCategories = false, sawAnnotations = false;
        try
        {
            var r = js.Start();
            js.ReadRequired(ref r);
            if (r.TokenType != JsonTokenType.StartObject) throw js.Error(js.Offset(r), $"expected a JSON object at the top level, found {r.TokenType}");
            long top = js.Offset(r);
            while (true)
            {
                js.ReadRequired(ref r);
                if (r.TokenType == JsonTokenType.EndObject) break;
                if (r.ValueTextEquals("images"u8)) { sawImages = true; ReadArray(js, ref r, "images", (JsonCtx c, ref Utf8JsonReader rr) => { imageOffsets.Add(c.Start); images.Add(ReadImage(c, ref rr)); }); }
                else if (r.ValueTextEquals("categories"u8)) { sawCategories = true; ReadArray(js, ref r, "categories", (JsonCtx c, ref Utf8JsonReader rr) => categories.Add(ReadCategory(c, ref rr))); }
                else if (r.ValueTextEquals("annotations"u8)) { sawAnnotations = true; ReadArray(js, ref r, "annotations", (JsonCtx c, ref Utf8JsonReader rr) => { annotationOffsets.Add(c.Start); annotations.Add(ReadAnnotation(c, ref rr)); }); }
                else js.Skip(ref r);
            }
            if (!sawImages) throw js.Error(top, "missing field \"images\" in the top-level object");
            if (!sawCategories) throw js.Error(top, "missing field \"categories\" in the top-level object");
            if (!sawAnnotations) throw js.Error(top, "missing field \"annotations\" in the top-level object");
        }
        catch (JsonException e) { throw js.Wrap(e); }
        return new CocoGroundTruth(images, categories, annotations,
            i => $"{js.Place(annotationOffsets[i])} (annotations[{i}])", i => $"{js.Place(imageOffsets[i])} (images[{i}])");
    }

    /// <summary>Reads a COCO results JSON (an array of {image_id, category_id, bbox, score}) and checks it against the
    /// ground truth: every detection must name a known image and category and have a non-negative box size.</summary>
    public static CocoDetection[] LoadDetections(string path, CocoGroundTruth groundTruth)
    {
        ArgumentNullException.ThrowIfNull(groundTruth);
        using var js = new CocoJsonStream(path);
        var dets = new List<CocoDetection>();
        var offsets = new List<long>();
        try
        {
            var r = js.Start();
            js.ReadRequired(ref r);
            if (r.TokenType != JsonTokenType.StartArray) throw js.Error(js.Offset(r), $"expected a JSON array of detections at the top level, found {r.TokenType}");
            int index = 0;
            while (true)
            {
                js.ReadRequired(ref r);
                if (r.TokenType == JsonTokenType.EndArray) break;
                var c = new JsonCtx(js, "detections", index++, js.Offset(r));
                offsets.Add(c.Start);
                dets.Add(ReadDetection(c, ref r));
            }
            if (js.Read(ref r)) throw js.Error(js.Offset(r), "unexpected data after the detections array");
        }
        catch (JsonException e) { throw js.Wrap(e); }
        var array = dets.ToArray();
        groundTruth.CheckDetections(array, i => $"{js.Place(offsets[i])} (detections[{i}])");
        return array;
    }

    /// <summary>Where we are: the stream, the array name and index, and the object's first byte.</summary>
    private readonly record struct JsonCtx(CocoJsonStream Js, string Array, int Index, long Start)
    {
        public CocoFormatException At(in Utf8JsonReader r, string problem) => Js.Error(Js.Offset(r), $"{Array}[{Index}]: {problem}");
        public CocoFormatException Missing(string field) => Js.Error(Start, $"{Array}[{Index}]: missing field \"{field}\"");
    }

    private delegate void ElementReader(JsonCtx ctx, ref Utf8JsonReader reader);

    private static void ReadArray(CocoJsonStream js, ref Utf8JsonReader r, string name, ElementReader element)
    {
        js.ReadRequired(ref r);
        if (r.TokenType != JsonTokenType.StartArray) throw js.Error(js.Offset(r), $"\"{name}\" must be an array, found {r.TokenType}");
        int index = 0;
        while (true)
        {
            js.ReadRequired(ref r);
            if (r.TokenType == JsonTokenType.EndArray) return;
            element(new JsonCtx(js, name, index++, js.Offset(r)), ref r);
        }
    }

    private static void BeginObject(JsonCtx c, in Utf8JsonReader r)
    {
        if (r.TokenType != JsonTokenType.StartObject) throw c.At(r, $"expected an object, found {r.TokenType}");
    }

    /// <summary>Moves to the next property name; false at the end of the object.</summary>
    private static bool NextProperty(JsonCtx c, ref Utf8JsonReader r)
    {
        c.Js.ReadRequired(ref r);
        return r.TokenType != JsonTokenType.EndObject;
    }

    private static CocoImage ReadImage(JsonCtx c, ref Utf8JsonReader r)
    {
        BeginObject(c, r);
        long? id = null; long w = 0, h = 0; string file = "";
        while (NextProperty(c, ref r))
        {
            if (r.ValueTextEquals("id"u8)) id = ReadId(c, ref r, "id");
            else if (r.ValueTextEquals("width"u8)) w = ReadId(c, ref r, "width");
            else if (r.ValueTextEquals("height"u8)) h = ReadId(c, ref r, "height");
            else if (r.ValueTextEquals("file_name"u8)) file = ReadString(c, ref r, "file_name");
            else c.Js.Skip(ref r);
        }
        if (id is null) throw c.Missing("id");
        if (w < 0 || h < 0) throw c.Js.Error(c.Start, $"images[{c.Index}]: negative size {w}x{h} for image {id}");
        return new CocoImage(id.Value, (int)Math.Min(w, int.MaxValue), (int)Math.Min(h, int.MaxValue), file);
    }

    private static CocoCategory ReadCategory(JsonCtx c, ref Utf8JsonReader r)
    {
        BeginObject(c, r);
        long? id = null; string name = "", super = "";
        while (NextProperty(c, ref r))
        {
            if (r.ValueTextEquals("id"u8)) id = ReadId(c, ref r, "id");
            else if (r.ValueTextEquals("name"u8)) name = ReadString(c, ref r, "name");
            else if (r.ValueTextEquals("supercategory"u8)) super = ReadString(c, ref r, "supercategory");
            else c.Js.Skip(ref r);
        }
        if (id is null) throw c.Missing("id");
        return new CocoCategory(id.Value, name, super);
    }

    private static CocoAnnotation ReadAnnotation(JsonCtx c, ref Utf8JsonReader r)
    {
        BeginObject(c, r);
        long? id = null, image = null, cat = null; double? area = null; bool crowd = false;
        Box? box = null;
        while (NextProperty(c, ref r))
        {
            if (r.ValueTextEquals("id"u8)) id = ReadId(c, ref r, "id");
            else if (r.ValueTextEquals("image_id"u8)) image = ReadId(c, ref r, "image_id");
            else if (r.ValueTextEquals("category_id"u8)) cat = ReadId(c, ref r, "category_id");
            else if (r.ValueTextEquals("bbox"u8)) box = ReadBox(c, ref r);
            else if (r.ValueTextEquals("area"u8)) area = ReadNumber(c, ref r, "area");
            else if (r.ValueTextEquals("iscrowd"u8)) crowd = ReadFlag(c, ref r, "iscrowd");
            else c.Js.Skip(ref r);
        }
        if (id is null) throw c.Missing("id");
        if (image is null) throw c.Missing("image_id");
        if (cat is null) throw c.Missing("category_id");
        if (box is null) throw c.Missing("bbox");
        if (area is null) throw c.Missing("area");
        var b = box.Value;
        return new CocoAnnotation(id.Value, image.Value, cat.Value, b.X, b.Y, b.W, b.H, area.Value, crowd);
    }

    private static CocoDetection ReadDetection(JsonCtx c, ref Utf8JsonReader r)
    {
        BeginObject(c, r);
        long? image = null, cat = null; double? score = null;
        Box? box = null;
        while (NextProperty(c, ref r))
        {
            if (r.ValueTextEquals("image_id"u8)) image = ReadId(c, ref r, "image_id");
            else if (r.ValueTextEquals("category_id"u8)) cat = ReadId(c, ref r, "category_id");
            else if (r.ValueTextEquals("bbox"u8)) box = ReadBox(c, ref r);
            else if (r.ValueTextEquals("score"u8)) score = ReadNumber(c, ref r, "score");
            else c.Js.Skip(ref r);
        }
        if (image is null) throw c.Missing("image_id");
        if (cat is null) throw c.Missing("category_id");
        if (box is null) throw c.Missing("bbox");
        if (score is null) throw c.Missing("score");
        var b = box.Value;
        return new CocoDetection(image.Value, cat.Value, b.X, b.Y, b.W, b.H, score.Value);
    }

    private readonly record struct Box(double X, double Y, double W, double H);

    private static Box ReadBox(JsonCtx c, ref Utf8JsonReader r)
    {
        c.Js.ReadRequired(ref r);
        if (r.TokenType != JsonTokenType.StartArray) throw c.At(r, $"\"bbox\" must be an array [x, y, w, h], found {r.TokenType}");
        Span<double> v = stackalloc double[4];
        int n = 0;
        while (true)
        {
            c.Js.ReadRequired(ref r);
            if (r.TokenType == JsonTokenType.EndArray) break;
            if (r.TokenType != JsonTokenType.Number) throw c.At(r, $"\"bbox\" holds a {r.TokenType}, expected numbers");
            if (n == 4) throw c.At(r, "\"bbox\" has more than 4 numbers");
            v[n++] = r.GetDouble();
        }
        if (n != 4) throw c.At(r, $"\"bbox\" has {n} numbers, expected 4 [x, y, w, h]");
        if (v[2] < 0 || v[3] < 0)
            throw c.At(r, string.Create(CultureInfo.InvariantCulture, $"\"bbox\" [{v[0]}, {v[1]}, {v[2]}, {v[3]}] has a negative width or height"));
        return new Box(v[0], v[1], v[2], v[3]);
    }

    private static double ReadNumber(JsonCtx c, ref Utf8JsonReader r, string field)
    {
        c.Js.ReadRequired(ref r);
        if (r.TokenType != JsonTokenType.Number) throw c.At(r, $"\"{field}\" must be a number, found {r.TokenType}");
        double v = r.GetDouble();
        if (field == "area" && v < 0) throw c.At(r, string.Create(CultureInfo.InvariantCulture, $"\"area\" {v} is negative"));
        return v;
    }

    /// <summary>An integer id or size; an integral float such as 42.0 is accepted (Python treats it as 42).</summary>
    private static long ReadId(JsonCtx c, ref Utf8JsonReader r, string field)
    {
        c.Js.ReadRequired(ref r);
        if (r.TokenType != JsonTokenType.Number) throw c.At(r, $"\"{field}\" must be an integer, found {r.TokenType}");
        if (r.TryGetInt64(out long v)) return v;
        double d = r.GetDouble();
        if (d != Math.Floor(d) || Math.Abs(d) > 9e15) throw c.At(r, string.Create(CultureInfo.InvariantCulture, $"\"{field}\" must be an integer, found {d}"));
        return (long)d;
    }

    private static bool ReadFlag(JsonCtx c, ref Utf8JsonReader r, string field)
    {
        c.Js.ReadRequired(ref r);
        return r.TokenType switch
        {
            JsonTokenType.True => true,
            JsonTokenType.False => false,
            JsonTokenType.Number => r.GetDouble() != 0,
            _ => throw c.At(r, $"\"{field}\" must be 0/1 or a boolean, found {r.TokenType}"),
        };
    }

    private static string ReadString(JsonCtx c, ref Utf8JsonReader r, string field)
    {
        c.Js.ReadRequired(ref r);
        if (r.TokenType == JsonTokenType.Null) return "";
        if (r.TokenType != JsonTokenType.String) throw c.At(r, $"\"{field}\" must be a string, found {r.TokenType}");
        return r.GetString() ?? "";
    }
}
