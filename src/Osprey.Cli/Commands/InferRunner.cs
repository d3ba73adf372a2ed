using System.Diagnostics;
using System.Text.Json;
using Osprey.Core;
using Osprey.Detection;
using Osprey.Detection.Boxes;
using Osprey.Detection.Models;
using Osprey.Engine.Runtime;
using Osprey.Vision.Codecs;
using Osprey.Vision.Imaging;
using Spectre.Console;

namespace Osprey.Cli.Commands;

/// <summary>The work of `osprey infer`: gather images, detect in batches, write COCO results, report failures per file.</summary>
public static class InferRunner
{
    private static readonly string[] s_extensions = [".jpg", ".jpeg", ".png"];

    public static int Run(InferSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var failures = new List<(string File, string Why)>();
        IDisposable detector;
        Func<IReadOnlyList<RgbImage>, IReadOnlyList<DetectedObject>[]> detect;
        string deviceName;
        Dictionary<string, long>? ids = null;
        Dictionary<int, string> names = [];
        List<string> files;
        try
        {
            if (s.Engine is not null)
            {
                var device = s.EngineDevice();
                files = Gather(s.Images, failures);
                if (s.Annotations is not null) (ids, names) = ReadAnnotations(s.Annotations);
                if (s.Draw is not null) Directory.CreateDirectory(s.Draw);
                var engine = EngineDetector.Load(s.Engine, device);
                (detector, detect, deviceName) = (engine, engine.Detect, $"{engine.Device} (engine {Path.GetFileName(s.Engine)})");
            }
            else
            {
                if (string.IsNullOrEmpty(s.Arch) || string.IsNullOrEmpty(s.Weights))
                    throw new ArgumentException("give --arch and --weights, or --engine");
                var arch = Architectures.Get(s.Arch);
                var options = s.ToDetectorOptions(arch);
                files = Gather(s.Images, failures);
                if (s.Annotations is not null) (ids, names) = ReadAnnotations(s.Annotations);
                if (s.Draw is not null) Directory.CreateDirectory(s.Draw);
                var eager = Detector.Load(arch.Name, s.Weights, options);
                (detector, detect, deviceName) = (eager, eager.Detect, eager.Device.ToString());
            }
        }
        catch (Exception e) when (e is ArgumentException or OspreyException or IOException or JsonException or UnauthorizedAccessException)
        {
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 2;
        }
        using (detector)
        {
            var results = new List<(long ImageId, DetectedObject D)>();
            int done = 0;
            var clock = Stopwatch.StartNew();
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("detecting", maxValue: Math.Max(1, files.Count));
                    for (int start = 0; start < files.Count; start += s.Batch)
                    {
                        var chunk = files.Skip(start).Take(s.Batch).ToList();
                        var images = new List<RgbImage>();
                        var imageIds = new List<long>();
                        var decoded = new List<string>();
                        foreach (string f in chunk)
                        {
                            try
                            {
                                long id = ImageId(f, ids);
                                images.Add(ImageDecoder.Decode(f));
                                imageIds.Add(id);
                                decoded.Add(f);
                            }
                            catch (Exception e) when (e is ImageDecodeException or ArgumentException)
                            {
                                failures.Add((f, e.Message));
                            }
                        }
                        if (images.Count > 0)
                        {
                            try
                            {
                                var dets = detect(images);
                                for (int i = 0; i < dets.Length; i++)
                                {
                                    foreach (var d in dets[i]) results.Add((imageIds[i], d));
                                    if (s.Draw is not null) Draw(images[i], dets[i], names, Path.Combine(s.Draw, Path.GetFileNameWithoutExtension(decoded[i]) + ".png"));
                                }
                            }
                            catch (OspreyException e)
                            {
                                foreach (string f in chunk.Where(f => !failures.Any(x => x.File == f))) failures.Add((f, e.Message));
                            }
                        }
                        done += chunk.Count;
                        task.Increment(chunk.Count);
                        task.Description = $"detecting ({done / Math.Max(clock.Elapsed.TotalSeconds, 1e-9):F1} images/s)";
                    }
                });
            clock.Stop();
            // torchvision's 91 labels include ids COCO never used (12, 26, ...): with annotations, keep only their categories
            int unknown = 0;
            if (names.Count > 0)
            {
                unknown = results.Count(r => !names.ContainsKey(r.D.Label));
                results.RemoveAll(r => !names.ContainsKey(r.D.Label));
            }
            try
            {
                WriteResults(s.Output, results);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                AnsiConsole.MarkupLine($"[red]error:[/] cannot write {Markup.Escape(s.Output)}: {Markup.Escape(e.Message)}");
                return 2;
            }
            int ok = files.Count - failures.Count(f => files.Contains(f.File));
            AnsiConsole.MarkupLine($"{ok} images, {results.Count} detections in {clock.Elapsed.TotalSeconds:F1} s " +
                $"({ok / Math.Max(clock.Elapsed.TotalSeconds, 1e-9):F2} images/s) on {Markup.Escape(deviceName)}; wrote {Markup.Escape(s.Output)}");
            if (unknown > 0)
                AnsiConsole.MarkupLine($"[yellow]left out {unknown} detections whose category id is not in the annotations' categories[/]");
            if (s.Annotations is not null) Evaluate(s.Annotations, s.Output, ok);
            if (failures.Count == 0) return 0;
            AnsiConsole.MarkupLine($"[red]{failures.Count} input(s) failed:[/]");
            foreach (var (f, why) in failures)
                AnsiConsole.MarkupLine("  " + Markup.Escape(why.StartsWith(f, StringComparison.Ordinal) ? why : $"{f}: {why}"));
            return 1;
        }
    }

    /// <summary>Files as given, and the JPEG/PNG files of directories (sorted); missing paths become failures.</summary>
    internal static List<string> Gather(IEnumerable<string> inputs, List<(string, string)> failures)
    {
        var files = new List<string>();
        foreach (string p in inputs)
        {
            if (Directory.Exists(p))
                files.AddRange(Directory.EnumerateFiles(p)
                    .Where(f => s_extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                    .Order(StringComparer.Ordinal));
            else if (File.Exists(p)) files.Add(p);
            else failures.Add((p, "no such file or directory"));
        }
        return files;
    }

    /// <summary>Detections drawn with --draw need at least this score (the JSON keeps every detection).</summary>
    public const float DrawThreshold = 0.3f;

    /// <summary>Boxes and "label score" captions of the detections scoring at least <see cref="DrawThreshold"/>, saved as PNG.</summary>
    internal static void Draw(RgbImage image, IReadOnlyList<DetectedObject> dets, Dictionary<int, string> names, string path)
    {
        var canvas = new Osprey.Vision.Imaging.Canvas(image);
        int thickness = Math.Max(1, Math.Min(image.Width, image.Height) / 300);
        foreach (var d in dets)
        {
            if (d.Score < DrawThreshold) continue;
            var color = Rgb8.Palette(d.Label);
            int x = (int)MathF.Round(d.X1), y = (int)MathF.Round(d.Y1);
            canvas.DrawRect(x, y, Math.Max(1, (int)MathF.Round(d.Width)), Math.Max(1, (int)MathF.Round(d.Height)), color, thickness);
            string label = $"{(names.TryGetValue(d.Label, out var n) ? n : $"class {d.Label}")} {d.Score:F2}";
            var (tw, th) = BitmapFont.Measure(label);
            int ty = Math.Max(0, y - th - 2);
            canvas.FillRect(x, ty, tw + 2, th + 2, color);
            canvas.DrawText(x + 1, ty + 1, label, Rgb8.White);
        }
        PngEncoder.Save(image, path);
    }

    /// <summary>COCO annotations: file_name to image id, and category id to name.</summary>
    /// <summary>COCO evaluation of the results just written against the annotations, printed as `osprey eval` does.</summary>
    private static void Evaluate(string annotations, string results, int processed)
    {
        var result = Osprey.Detection.Evaluation.CocoEvaluator.EvaluateFiles(annotations, results);
        int images = result.ImageCount;
        if (images != processed)
            AnsiConsole.MarkupLine($"[yellow]note: the annotations hold {images} images and {processed} were processed; " +
                "COCOeval counts every annotated image, so objects in images not processed count as missed[/]");
        EvalCommand.Report(result, new EvalReportOptions());
    }

    internal static (Dictionary<string, long> Ids, Dictionary<int, string> Names) ReadAnnotations(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        if (!doc.RootElement.TryGetProperty("images", out var images) || images.ValueKind != JsonValueKind.Array)
            throw new ArgumentException($"{path}: not a COCO annotations file (no \"images\" array)");
        var ids = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var im in images.EnumerateArray())
            ids[Path.GetFileName(im.GetProperty("file_name").GetString()!)] = im.GetProperty("id").GetInt64();
        var names = new Dictionary<int, string>();
        if (doc.RootElement.TryGetProperty("categories", out var cats) && cats.ValueKind == JsonValueKind.Array)
            foreach (var c in cats.EnumerateArray())
                names[c.GetProperty("id").GetInt32()] = c.GetProperty("name").GetString() ?? "";
        return (ids, names);
    }

    /// <summary>The image id: from the annotations by file name, else the numeric file name (000000000009.jpg is 9).</summary>
    internal static long ImageId(string file, Dictionary<string, long>? ids)
    {
        string name = Path.GetFileName(file);
        if (ids is not null)
            return ids.TryGetValue(name, out long id) ? id : throw new ArgumentException($"{name} is not in the annotations' images");
        if (long.TryParse(Path.GetFileNameWithoutExtension(file), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long n))
            return n;
        throw new ArgumentException($"{name}: no numeric file name to take an image id from (pass --annotations)");
    }

    /// <summary>COCO results: [{image_id, category_id, bbox: [x, y, w, h], score}], labels being COCO category ids for torchvision's models.</summary>
    internal static void WriteResults(string path, IReadOnlyList<(long ImageId, DetectedObject D)> results)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        using var stream = File.Create(path);
        using var w = new Utf8JsonWriter(stream);
        w.WriteStartArray();
        foreach (var (id, d) in results)
        {
            w.WriteStartObject();
            w.WriteNumber("image_id", id);
            w.WriteNumber("category_id", d.Label);
            w.WriteStartArray("bbox");
            w.WriteNumberValue(d.X1);
            w.WriteNumberValue(d.Y1);
            w.WriteNumberValue(d.Width);
            w.WriteNumberValue(d.Height);
            w.WriteEndArray();
            w.WriteNumber("score", d.Score);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }
}
