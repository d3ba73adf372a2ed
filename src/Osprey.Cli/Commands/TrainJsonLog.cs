using System.Buffers;
using System.Text.Json;
using Osprey.Detection.Training.Loop;

namespace Osprey.Cli.Commands;

/// <summary>
/// train.jsonl, beside train.csv: one JSON object per logged iteration, {"iteration", "loss", "classification", "box", "lr",
/// "grad_norm", "images_per_s", "elapsed_s", "map"}; a value that is not a finite number (no validation at that iteration, no
/// clipping) is null. Written with <see cref="Utf8JsonWriter"/> (no reflection, so the trimmed build keeps working). A resumed
/// run keeps the lines up to its checkpoint's iteration, as train.csv.
/// </summary>
internal sealed class TrainJsonLog
{
    private readonly string _path;
    private readonly ArrayBufferWriter<byte> _pending = new();
    private int _pendingRows;

    public TrainJsonLog(string path, long resumeAt)
    {
        _path = path;
        var kept = new List<string>();
        if (resumeAt > 0 && File.Exists(path))
            foreach (string line in File.ReadLines(path))
                if (Iteration(line) is long it && it <= resumeAt) kept.Add(line);
        File.WriteAllLines(path, kept);
    }

    /// <summary>The "iteration" of a line, or null when the line is not a JSON object with an integer iteration (a line cut by a kill).</summary>
    internal static long? Iteration(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("iteration", out var v)
                && v.TryGetInt64(out long it) ? it : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public void Add(TrainStepResult r, double rate, double secs, double? map)
    {
        using (var w = new Utf8JsonWriter(_pending))
        {
            w.WriteStartObject();
            w.WriteNumber("iteration", r.Iteration);
            Number(w, "loss", r.Loss.Total);
            Number(w, "classification", r.Loss.Classification);
            Number(w, "box", r.Loss.BoxRegression);
            Number(w, "lr", r.LearningRate);
            Number(w, "grad_norm", r.GradNorm);
            Number(w, "images_per_s", rate);
            Number(w, "elapsed_s", secs);
            Number(w, "map", map ?? double.NaN);
            w.WriteEndObject();
        }
        _pending.Write("\n"u8);
        if (++_pendingRows >= 50) Flush();
    }

    private static void Number(Utf8JsonWriter w, string name, double v)
    {
        if (double.IsFinite(v)) w.WriteNumber(name, v);
        else w.WriteNull(name);
    }

    public void Flush()
    {
        if (_pendingRows == 0) return;
        using (var f = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read)) f.Write(_pending.WrittenSpan);
        _pending.Clear();
        _pendingRows = 0;
    }
}
