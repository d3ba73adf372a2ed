using System.CommandLine;
using System.Globalization;
using Osprey.Core.Tensors;
using Osprey.Detection;
using Osprey.Detection.Boxes;
using Osprey.Detection.Models;
using Osprey.Vision.Transforms;
using Spectre.Console;

namespace Osprey.Cli.Commands;

/// <summary>`osprey infer`: runs a detector over images and writes COCO results JSON.</summary>
public static class InferCommand
{
    public static Command Create()
    {
        var arch = new Option<string>("--arch") { Description = $"architecture: {string.Join(", ", Architectures.All.Select(a => a.Name))}" };
        var weights = new Option<string>("--weights") { Description = "safetensors file or PyTorch .pth/.pt checkpoint" };
        var engine = new Option<string?>("--engine") { Description = "engine file from `osprey export` (instead of --arch/--weights)" };
        var images = new Option<string[]>("--images") { Description = "image files and/or directories (JPEG, PNG)", Required = true, AllowMultipleArgumentsPerToken = true, Arity = ArgumentArity.OneOrMore };
        var annotations = new Option<string?>("--annotations") { Description = "COCO annotations JSON: image_id is looked up by file name" };
        var output = new Option<string>("--output") { Description = "COCO results JSON to write", Required = true };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var batch = new Option<int>("--batch") { Description = "images per forward pass", DefaultValueFactory = _ => 1 };
        var precision = new Option<string>("--precision") { Description = "fp32 or fp16", DefaultValueFactory = _ => "fp32" };
        var resize = new Option<int?>("--resize") { Description = "shorter side target (SSD: the square input size)" };
        var maxSize = new Option<int?>("--max-size") { Description = "longer side cap" };
        var score = new Option<float?>("--score-threshold") { Description = "minimum score (default: the architecture's reference value)" };
        var nms = new Option<double?>("--nms-threshold") { Description = "NMS IoU threshold" };
        var maxDet = new Option<int?>("--max-detections") { Description = "detections kept per image" };
        var draw = new Option<string?>("--draw") { Description = "write images with boxes and labels to this directory" };
        var cmd = new Command("infer", "Detect objects in images and write COCO results JSON")
        {
            arch, weights, engine, images, annotations, output, device, batch, precision, resize, maxSize, score, nms, maxDet, draw,
        };
        cmd.SetAction(r => InferRunner.Run(new InferSettings(
            r.GetValue(arch)!, r.GetValue(weights)!, r.GetValue(images)!, r.GetValue(annotations), r.GetValue(output)!,
            r.GetValue(device)!, r.GetValue(batch), r.GetValue(precision)!, r.GetValue(resize), r.GetValue(maxSize),
            r.GetValue(score), r.GetValue(nms), r.GetValue(maxDet), r.GetValue(draw)) { Engine = r.GetValue(engine) }));
        return cmd;
    }
}

/// <summary>The parsed command line of `osprey infer`.</summary>
public sealed record InferSettings(
    string Arch, string Weights, string[] Images, string? Annotations, string Output, string Device, int Batch, string Precision,
    int? Resize, int? MaxSize, float? ScoreThreshold, double? NmsThreshold, int? MaxDetections, string? Draw)
{
    /// <summary>An engine file to run instead of --arch/--weights (it carries architecture, weights, size, precision and post-processing).</summary>
    public string? Engine { get; init; }

    /// <summary>Checks that --engine is not combined with what the engine carries; returns the device to load it on.</summary>
    public Device EngineDevice()
    {
        var given = new List<string>();
        if (!string.IsNullOrEmpty(Arch)) given.Add("--arch");
        if (!string.IsNullOrEmpty(Weights)) given.Add("--weights");
        if (Precision != "fp32") given.Add("--precision");
        if (Resize is not null) given.Add("--resize");
        if (MaxSize is not null) given.Add("--max-size");
        if (ScoreThreshold is not null) given.Add("--score-threshold");
        if (NmsThreshold is not null) given.Add("--nms-threshold");
        if (MaxDetections is not null) given.Add("--max-detections");
        if (given.Count > 0)
            throw new ArgumentException($"--engine carries the architecture, weights, size, precision and post-processing: drop {string.Join(", ", given)} (set them at `osprey export`)");
        if (Batch < 1) throw new ArgumentException($"--batch {Batch} must be at least 1");
        try
        {
            var device = Core.Tensors.Device.Parse(Device);
            if (device.Type is not (DeviceType.Cpu or DeviceType.Cuda)) throw new ArgumentException($"--device {Device}: expected cpu, cuda or cuda:N");
            return device;
        }
        catch (FormatException e)
        {
            throw new ArgumentException($"--device {Device}: {e.Message}", e);
        }
    }

    /// <summary>Detector options from the architecture's defaults and the overrides given; throws ArgumentException on bad values.</summary>
    public DetectorOptions ToDetectorOptions(Architecture arch)
    {
        ArgumentNullException.ThrowIfNull(arch);
        Device device;
        try
        {
            device = Core.Tensors.Device.Parse(Device);
        }
        catch (FormatException e)
        {
            throw new ArgumentException($"--device {Device}: {e.Message}", e);
        }
        if (device.Type is not (DeviceType.Cpu or DeviceType.Cuda)) throw new ArgumentException($"--device {Device}: expected cpu, cuda or cuda:N");
        var precision = Precision switch
        {
            "fp32" => Detection.Precision.Fp32,
            "fp16" => Detection.Precision.Fp16,
            _ => throw new ArgumentException($"--precision {Precision}: expected fp32 or fp16"),
        };
        if (precision == Detection.Precision.Fp16 && device.Type == DeviceType.Cpu)
            throw new ArgumentException("--precision fp16 needs a GPU (--device cuda or cuda:N); the CPU runs fp32");
        if (Batch < 1) throw new ArgumentException($"--batch {Batch} must be at least 1");
        var policy = arch.Resize;
        if (Resize is int r)
            policy = policy.Kind == ResizeKind.Fixed ? policy with { MinSize = r, MaxSize = r } : policy with { MinSize = r };
        if (MaxSize is int m)
        {
            if (policy.Kind == ResizeKind.Fixed) throw new ArgumentException($"--max-size does not apply to {arch.Name}, whose input is a fixed square (use --resize)");
            policy = policy with { MaxSize = m };
        }
        policy.Validate();
        var post = arch.PostProcess;
        if (ScoreThreshold is float s) post = post with { ScoreThreshold = s };
        if (NmsThreshold is double n) post = post with { NmsThreshold = n };
        if (MaxDetections is int d) post = post with { DetectionsPerImage = d };
        post.Validate();
        return new DetectorOptions { Device = device, Precision = precision, Resize = policy, PostProcess = post };
    }
}
