using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Osprey.Core;
using Osprey.Detection.Evaluation;
using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Loop;
using Osprey.Vision.Imaging;
using Spectre.Console;

namespace Osprey.Cli.Commands;

/// <summary>Where a run writes and how often it checkpoints and validates.</summary>
internal sealed record RunSpec(string Checkpoint, string LogDir, int ValIters, int ValMax, int CheckpointEvery);

/// <summary>What a run ended with: the last validation (if any), seconds trained in this process, whether it was interrupted.</summary>
internal sealed record TrainOutcome(CocoEvalResult? LastValidation, double Seconds, long ImagesSeen, bool Interrupted);

/// <summary>Runs `osprey train`: the loop, a live display, atomic checkpoints, validation, CSV log and plots.</summary>
public static class TrainRunner
{
    public static int Run(TrainSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        Trainer trainer;
        CocoDetectionDataset data;
        CocoDetectionDataset? val = null;
        string how;
        try
        {
            var options = s.ToOptions();
            data = TrainSetup.Dataset(s.Annotations, s.Images);
            if (s.ValAnnotations is not null) val = new CocoDetectionDataset(s.ValAnnotations, s.ValImages!, new CocoDatasetOptions(LabelMapping.CategoryId));
            (trainer, how) = TrainSetup.Start(options, data, s.Output, s.FineTune);
            if (s.ParseDevices() is { } devices)
            {
                var nodes = s.MultiNode();
                try { trainer.EnableDataParallel(devices, nodes); }
                catch { trainer.Dispose(); throw; }
                int world = devices.Count * (nodes?.Nodes ?? 1);
                how += $"; data parallel on {string.Join(", ", devices)}{(nodes is null ? "" : $" of node {nodes.NodeRank} of {nodes.Nodes}")} (global batch {options.BatchSize}, {options.BatchSize / world} per device)";
            }
        }
        catch (Exception e) when (e is ArgumentException or OspreyException or IOException or JsonException or UnauthorizedAccessException or InvalidOperationException)
        {
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 2;
        }
        using (trainer)
        {
            AnsiConsole.MarkupLine($"[bold]{trainer.Architecture.Name}[/]: {Markup.Escape(how)}; {data.Count} training images, batch {trainer.Options.BatchSize}, " +
                $"{trainer.Options.Iterations} iterations on {trainer.Options.Device}, {trainer.Options.Workers} loader threads");
            string logDir = s.LogDir ?? Path.GetDirectoryName(Path.GetFullPath(s.Output))!;
            try
            {
                var outcome = Train(trainer, data, val, new RunSpec(s.Output, logDir, s.ValIters, s.ValMax, s.CheckpointEvery));
                return outcome.Interrupted ? 130 : 0;
            }
            catch (Exception e) when (e is OspreyException or IOException or InvalidOperationException or NotSupportedException or ArgumentException)
            {
                AnsiConsole.MarkupLine($"[red]error at iteration {trainer.Iteration + 1}:[/] {Markup.Escape(e.Message)}");
                AnsiConsole.MarkupLine($"the last checkpoint ({Markup.Escape(s.Output)}) is intact; rerun the same command to resume");
                return 1;
            }
        }
    }

    internal static TrainOutcome Train(Trainer trainer, CocoDetectionDataset data, CocoDetectionDataset? val, RunSpec spec)
    {
        Directory.CreateDirectory(spec.LogDir);
        var log = new TrainLog(Path.Combine(spec.LogDir, "train.csv"), resumeAt: trainer.Iteration);
        using var cts = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cts.Cancel(); };
        Console.CancelKeyPress += onCancel;
        var clock = Stopwatch.StartNew();
        long startIter = trainer.Iteration, images = 0;
        CocoEvalResult? last = null;
        bool interrupted = false;
        var status = new TrainStatus(trainer);
        bool primary = trainer.Parallel?.IsPrimary ?? true;   // multi-node: node 0 alone checkpoints and validates
        try
        {
            void Loop(Action<TrainStatus> refresh)
            {
                try
                {
                    foreach (var r in trainer.Run(data, cts.Token))
                    {
                        images += r.Images;
                        double secs = clock.Elapsed.TotalSeconds;
                        double rate = images / Math.Max(1e-9, secs);
                        double? map = null;
                        bool end = r.Iteration >= trainer.Options.Iterations;
                        if (primary && val is not null && (r.Iteration % spec.ValIters == 0 || end))
                        {
                            status.Note = "validating";
                            refresh(status);
                            last = trainer.Evaluate(val, spec.ValMax).Result;
                            map = last.AP;
                        }
                        log.Add(r, rate, secs, map);
                        if (r.Iteration % spec.CheckpointEvery == 0 || end)
                        {
                            if (primary) trainer.Save(spec.Checkpoint);
                            log.Flush();
                            Plots(log, spec.LogDir);
                        }
                        status.Update(r, rate, (trainer.Options.Iterations - r.Iteration) * trainer.Options.BatchSize / Math.Max(1e-9, rate), map);
                        refresh(status);
                    }
                }
                catch (OperationCanceledException)
                {
                    interrupted = true;
                }
            }
            if (AnsiConsole.Profile.Capabilities.Interactive && !Console.IsOutputRedirected)
                AnsiConsole.Live(status.Render()).Start(ctx => Loop(st => { ctx.UpdateTarget(st.Render()); ctx.Refresh(); }));
            else
            {
                var lastPrint = Stopwatch.StartNew();
                Loop(st =>
                {
                    if (st.Note.Length > 0) return;
                    if (st.Iteration == trainer.Options.Iterations || st.Map is not null || lastPrint.Elapsed.TotalSeconds >= 5 || st.Iteration <= startIter + 1)
                    {
                        Console.WriteLine(st.Line());
                        lastPrint.Restart();
                    }
                });
            }
            if (interrupted && primary && trainer.Iteration > startIter)
            {
                trainer.Save(spec.Checkpoint);
                AnsiConsole.MarkupLine($"interrupted: checkpoint at iteration {trainer.Iteration} written to {Markup.Escape(spec.Checkpoint)}; rerun to resume");
            }
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
            log.Flush();
            Plots(log, spec.LogDir);
        }
        AnsiConsole.MarkupLine($"{trainer.Iteration - startIter} iterations in {clock.Elapsed.TotalSeconds:F0} s ({images / Math.Max(1e-9, clock.Elapsed.TotalSeconds):F2} images/s); " +
            $"checkpoint {Markup.Escape(spec.Checkpoint)}, log {Markup.Escape(Path.Combine(spec.LogDir, "train.csv"))}" +
            (last is null ? "" : string.Create(CultureInfo.InvariantCulture, $"; validation mAP {last.AP:F3} (AP50 {last.Stats[1]:F3})")));
        return new TrainOutcome(last, clock.Elapsed.TotalSeconds, images, interrupted);
    }

    private static void Plots(TrainLog log, string dir)
    {
        if (log.Rows.Count < 2) return;
        var it = log.Rows.Select(r => (double)r.Iteration).ToArray();
        PngEncoder.Save(LinePlot.Render(
        [
            new PlotSeries("total", it, log.Rows.Select(r => r.Total).ToArray()),
            new PlotSeries("classification", it, log.Rows.Select(r => r.Cls).ToArray()),
            new PlotSeries("box", it, log.Rows.Select(r => r.Box).ToArray()),
        ], new LinePlotOptions { Title = "training loss", XLabel = "iteration", YLabel = "loss", YMin = 0 }), Path.Combine(dir, "loss.png"));
        var maps = log.Rows.Where(r => r.Map is not null).ToArray();
        if (maps.Length >= 1)
            PngEncoder.Save(LinePlot.Render(
                [new PlotSeries("mAP@[.5:.95]", maps.Select(r => (double)r.Iteration).ToArray(), maps.Select(r => r.Map!.Value).ToArray())],
                new LinePlotOptions { Title = "validation mAP", XLabel = "iteration", YLabel = "mAP", YMin = 0, YMax = 1, Legend = LegendCorner.LowerRight }),
                Path.Combine(dir, "map.png"));
    }
}

/// <summary>The live display's state: loss parts, lr, images/s, ETA, last mAP.</summary>
internal sealed class TrainStatus(Trainer trainer)
{
    public long Iteration { get; private set; } = trainer.Iteration;
    public TrainStepResult Last { get; private set; }
    public double Rate { get; private set; }
    public double Eta { get; private set; }
    public double? Map { get; private set; }
    public double? BestMap { get; private set; }
    public string Note { get; set; } = "";

    public void Update(TrainStepResult r, double rate, double eta, double? map)
    {
        Iteration = r.Iteration;
        Last = r;
        Rate = rate;
        Eta = eta;
        Map = map;
        if (map is double m) BestMap = Math.Max(BestMap ?? 0, m);
        Note = "";
    }

    public string Line() => string.Create(CultureInfo.InvariantCulture,
        $"{Trainer.Describe(Last)}, {Rate:F2} img/s, eta {TimeSpan.FromSeconds(Math.Round(Eta)):c}{(Map is double m ? $", mAP {m:F3}" : "")}");

    public Table Render()
    {
        var t = new Table().Border(TableBorder.Rounded).Title($"osprey train · {trainer.Architecture.Name} · {trainer.Options.Device}");
        t.AddColumn("iteration").AddColumn("loss").AddColumn("classification").AddColumn("box").AddColumn("lr").AddColumn("img/s").AddColumn("ETA").AddColumn("mAP");
        var inv = CultureInfo.InvariantCulture;
        t.AddRow($"{Iteration}/{trainer.Options.Iterations}", Last.Loss.Total.ToString("F4", inv), Last.Loss.Classification.ToString("F4", inv),
            Last.Loss.BoxRegression.ToString("F4", inv), Last.LearningRate.ToString("G4", inv), Rate.ToString("F2", inv),
            TimeSpan.FromSeconds(Math.Round(Eta)).ToString("c", inv), (BestMap is double b ? b.ToString("F3", inv) : "-") + (Note.Length > 0 ? $" ({Note})" : ""));
        return t;
    }
}

/// <summary>train.csv (and train.jsonl, <see cref="TrainJsonLog"/>): one row per iteration (iteration, loss, classification, box, lr, grad_norm, images_per_s, elapsed_s, map);
/// a resumed run appends to it and plots its whole history.</summary>
internal sealed class TrainLog
{
    private readonly string _path;
    private readonly List<string> _pending = [];
    private readonly TrainJsonLog _json;

    public List<(long Iteration, double Total, double Cls, double Box, double? Map)> Rows { get; } = [];

    /// <param name="resumeAt">The checkpoint's iteration: rows up to it are kept (rows logged after it, by a run killed
    /// before its next checkpoint, are dropped, since the resumed run redoes those iterations).</param>
    public TrainLog(string path, long resumeAt)
    {
        _path = path;
        const string Header = "iteration,loss,classification,box,lr,grad_norm,images_per_s,elapsed_s,map";
        var kept = new List<string> { Header };
        if (resumeAt > 0 && File.Exists(path))
        {
            foreach (string line in File.ReadLines(path).Skip(1))
            {
                var f = line.Split(',');
                if (f.Length < 9 || !long.TryParse(f[0], CultureInfo.InvariantCulture, out long it) || it > resumeAt) continue;
                double D(string x) => double.TryParse(x, CultureInfo.InvariantCulture, out double v) ? v : double.NaN;
                Rows.Add((it, D(f[1]), D(f[2]), D(f[3]), f[8].Length > 0 ? D(f[8]) : null));
                kept.Add(line);
            }
        }
        File.WriteAllLines(path, kept);
        _json = new TrainJsonLog(Path.Join(Path.GetDirectoryName(path), "train.jsonl"), resumeAt);
    }

    public void Add(TrainStepResult r, double rate, double secs, double? map)
    {
        Rows.Add((r.Iteration, r.Loss.Total, r.Loss.Classification, r.Loss.BoxRegression, map));
        _pending.Add(string.Create(CultureInfo.InvariantCulture,
            $"{r.Iteration},{r.Loss.Total:G9},{r.Loss.Classification:G9},{r.Loss.BoxRegression:G9},{r.LearningRate:G9},{r.GradNorm:G9},{rate:G6},{secs:G6},{(map is double m ? m.ToString("G6", CultureInfo.InvariantCulture) : "")}"));
        _json.Add(r, rate, secs, map);
        if (_pending.Count >= 50) Flush();
    }

    public void Flush()
    {
        _json.Flush();
        if (_pending.Count == 0) return;
        File.AppendAllLines(_path, _pending);
        _pending.Clear();
    }
}
