using System.CommandLine;
using Osprey.Core;
using Osprey.Detection.Models;
using Osprey.Engine.Serialization;
using Spectre.Console;

namespace Osprey.Cli.Commands;

/// <summary>`osprey bench`: throughput, latency percentiles, memory and per-stage time of a detector engine.</summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var engine = new Option<string?>("--engine") { Description = "engine file from `osprey export`" };
        var arch = new Option<string?>("--arch") { Description = $"build an engine in memory for: {string.Join(", ", Architectures.All.Select(a => a.Name))}" };
        var weights = new Option<string?>("--weights") { Description = "weights for --arch (default: seeded stand-in weights; timing only)" };
        var size = ExportCommand.SizeOption();
        var precision = new Option<string?>("--precision") { Description = "with --arch: fp16 or fp32 (default fp16 on a GPU, fp32 on the CPU)" };
        var batch = new Option<int?>("--batch") { Description = "images per run (default: the engine's maximum; with --arch: 1)" };
        var streams = new Option<int>("--streams") { Description = "execution contexts per device", DefaultValueFactory = _ => 1 };
        var seconds = new Option<double>("--seconds") { Description = "measuring time", DefaultValueFactory = _ => 10 };
        var devices = new Option<string>("--devices") { Description = "all, a list of GPU indices (0,1), or cpu", DefaultValueFactory = _ => "0" };
        var json = new Option<string?>("--json") { Description = "also write the results as JSON" };
        var saveWeights = new Option<string?>("--save-weights") { Description = "with --arch: also write the weights used (seeded stand-ins by default) as safetensors, for the PyTorch side" };
        var pad = new Option<int>("--pad-channels")
        {
            Description = "with --arch: pad convolution output channels to this multiple (zero filters, heads of A*K channels); 0: off",
            DefaultValueFactory = _ => Osprey.Engine.BuildOptions.Default.PadConvChannelsTo,
        };
        var fp32Heads = new Option<bool>("--fp32-heads") { Description = "with --arch and fp16: float32 head outputs (the default keeps them float16 into the GPU decode)" };
        var cmd = new Command("bench", "Measure a detector engine: images/s, latency p50/p90/p99, GPU memory, per-stage time")
        {
            engine, arch, weights, size, precision, batch, streams, seconds, devices, json,
        };
        cmd.Options.Add(saveWeights);
        cmd.Options.Add(pad);
        cmd.Options.Add(fp32Heads);
        cmd.SetAction(r =>
        {
            try
            {
                var settings = new BenchSettings(r.GetValue(engine), r.GetValue(arch), r.GetValue(weights), r.GetValue(size), r.GetValue(precision),
                    r.GetValue(batch), r.GetValue(streams), r.GetValue(seconds), r.GetValue(devices)!, r.GetValue(json))
                { SaveWeights = r.GetValue(saveWeights), PadChannels = r.GetValue(pad), Float32Heads = r.GetValue(fp32Heads) };
                return BenchRunner.Run(settings);
            }
            catch (Exception e) when (e is ArgumentException or OspreyException or IOException or UnauthorizedAccessException)
            {
                AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
                return 2;
            }
        });
        return cmd;
    }
}

/// <summary>The parsed command line of `osprey bench`.</summary>
public sealed record BenchSettings(string? Engine, string? Arch, string? Weights, int[]? Size, string? Precision, int? Batch,
    int Streams, double Seconds, string Devices, string? Json)
{
    /// <summary>`--save-weights FILE`: the weights the bench builds its engine from, written as safetensors.</summary>
    public string? SaveWeights { get; init; }

    /// <summary>`--pad-channels N`: the multiple convolution output channels are padded to when building (0: no padding).</summary>
    public int PadChannels { get; init; } = Osprey.Engine.BuildOptions.Default.PadConvChannelsTo;

    /// <summary>`--fp32-heads`: float16 engines write float32 head outputs (before session 4's float16 heads).</summary>
    public bool Float32Heads { get; init; }
}
