using System.Text.Json;
using Osprey.Core.IO;
using Osprey.Core.Tensors;
using Osprey.Detection;
using Osprey.Detection.Boxes;
using Osprey.Detection.Models;
using Osprey.Engine;
using Osprey.Engine.Graph;
using Osprey.Engine.Runtime;
using Osprey.Engine.Serialization;
using Osprey.Tests.Support;
using Osprey.Tests.Vision;
using Osprey.Vision.Codecs;
using Osprey.Vision.Transforms;
using Spectre.Console;

namespace Osprey.Tests.Engine;

/// <summary>
/// Detector engines on the CPU: `osprey export` + `osprey infer --engine` against the eager `osprey infer` on coco128 images
/// (formula weights, RetinaNet-R18 at 96x96, where the eager path pads to the same 96x96 input), the engine API against
/// <see cref="Detector"/> with batches below the built maximum, bad engine files, and `osprey bench` on the CPU.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class EngineCliTests : IDisposable
{
    private const string Arch = "retinanet_resnet18_fpn";
    private readonly string _dir = Directory.CreateTempSubdirectory("osprey-engine-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static StateDict Formula()
    {
        using var probe = Architectures.Get(Arch).Create();
        return FormulaWeights.StateDict(probe.Parameters.Expected);
    }

    private string WeightsFile()
    {
        using var sd = Formula();
        string path = Path.Combine(_dir, "r18.safetensors");
        SafeTensors.Save(path, sd);
        return path;
    }

    private static string Image(string name) => Path.Combine(ImageDecoderTests.CocoDir, name);

    private static int Quiet(params string[] args) => Capture(args).Rc;

    /// <summary>Runs the CLI with Console.Out and Spectre's console (created once per process, so replaced here) captured.</summary>
    private static (int Rc, string Text) Capture(params string[] args)
    {
        var savedOut = Console.Out;
        var savedAnsi = AnsiConsole.Console;
        var w = new StringWriter();
        Console.SetOut(w);
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(w), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
        console.Profile.Width = 250;
        AnsiConsole.Console = console;
        try
        {
            return (Osprey.Cli.Program.Main(args), w.ToString());
        }
        finally
        {
            AnsiConsole.Console = savedAnsi;
            Console.SetOut(savedOut);
        }
    }

    [Fact]
    public void Export_then_infer_engine_matches_eager_infer_on_coco128()
    {
        string weights = WeightsFile(), engine = Path.Combine(_dir, "r18.engine");
        Assert.Equal(0, Quiet("export", "--arch", Arch, "--weights", weights, "--size", "96", "--batch", "2", "--device", "cpu", "--max-detections", "50", engine));
        string[] images = [Image("000000000009.jpg"), Image("000000000025.jpg"), Image("000000000030.jpg")];
        string eagerOut = Path.Combine(_dir, "eager.json"), engineOut = Path.Combine(_dir, "engine.json");
        Assert.Equal(0, Quiet(["infer", "--arch", Arch, "--weights", weights, "--images", .. images, "--output", eagerOut,
            "--resize", "96", "--max-size", "96", "--max-detections", "50", "--batch", "3"]));
        Assert.Equal(0, Quiet(["infer", "--engine", engine, "--images", .. images, "--output", engineOut, "--batch", "3"]));
        var want = Read(eagerOut);
        var got = Read(engineOut);
        Assert.NotEmpty(want);
        // one batch of 3: the eager path pads all three to 96x96 (the 640x480 image resizes to 72x96), as the engine does
        Assert.Equal(want.Length, got.Length);
        for (int i = 0; i < want.Length; i++)
        {
            Assert.Equal(want[i].Image, got[i].Image);
            Assert.Equal(want[i].Category, got[i].Category);
            Assert.Equal(want[i].Score, got[i].Score, 1e-5);
            for (int j = 0; j < 4; j++) Assert.Equal(want[i].Box[j], got[i].Box[j], 1e-3);
        }
    }

    private static (long Image, int Category, double Score, double[] Box)[] Read(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return [.. doc.RootElement.EnumerateArray().Select(d => (d.GetProperty("image_id").GetInt64(), d.GetProperty("category_id").GetInt32(),
            d.GetProperty("score").GetDouble(), d.GetProperty("bbox").EnumerateArray().Select(v => v.GetDouble()).ToArray()))];
    }

    [Fact]
    public void Engine_detect_matches_detector_for_full_and_partial_batches()
    {
        using var weights = Formula();
        var spec = new DetectorEngineSpec(Arch, 2, 96, 96, DType.Float32, PostProcessOptions.RetinaNetTorchvision with { DetectionsPerImage = 40 });
        var graph = DetectorEngines.Build(spec, weights, "formula");
        using var engine = new EngineDetector(graph, Device.Cpu);
        using var detector = Detector.Create(Arch, weights, "formula", new DetectorOptions
        {
            Resize = new ResizePolicy(ResizeKind.Torchvision, 96, 96, 32), PostProcess = spec.PostProcess,
        });
        var a = ImageDecoder.Decode(Image("000000000009.jpg"));
        var b = ImageDecoder.Decode(Image("000000000030.jpg"));
        // the pair pads to 96x96 on the eager path too; a batch of one (below the built 2) must give the same as in the pair
        var want = detector.Detect([a, b]);
        var pair = engine.Detect([a, b]);
        var single = engine.Detect([b]);
        Assert.Equal(2, pair.Length);
        SameDetections.Assert(want[0], pair[0]);
        SameDetections.Assert(want[1], pair[1]);
        SameDetections.Assert(want[1], single[0]);
        Assert.Throws<ArgumentException>(() => engine.Preprocess([a, b, a]));
    }

    [Fact]
    public void Bad_engine_files_and_options_give_clear_errors()
    {
        string weights = WeightsFile(), engine = Path.Combine(_dir, "r18.engine");
        Assert.Equal(0, Quiet("export", "--arch", Arch, "--weights", weights, "--size", "64", "--device", "cpu", engine));
        string output = Path.Combine(_dir, "out.json");

        var bytes = File.ReadAllBytes(engine);
        string truncated = Path.Combine(_dir, "truncated.engine");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        var (rc, text) = Capture("infer", "--engine", truncated, "--images", Image("000000000009.jpg"), "--output", output);
        Assert.Equal(2, rc);
        Assert.Contains("truncated.engine", text, StringComparison.Ordinal);

        (rc, text) = Capture("infer", "--engine", Path.Combine(_dir, "missing.engine"), "--images", Image("000000000009.jpg"), "--output", output);
        Assert.Equal(2, rc);
        Assert.Contains("missing.engine", text, StringComparison.Ordinal);

        (rc, text) = Capture("infer", "--engine", engine, "--arch", Arch, "--images", Image("000000000009.jpg"), "--output", output);
        Assert.Equal(2, rc);
        Assert.Contains("drop --arch", text, StringComparison.Ordinal);

        (rc, text) = Capture("export", "--arch", Arch, "--weights", weights, "--precision", "fp16", "--device", "cpu", engine);
        Assert.Equal(2, rc);
        Assert.Contains("fp16 needs a GPU", text, StringComparison.Ordinal);

        (rc, text) = Capture("export", "--arch", Arch, "--weights", weights, "--size", "100", "--device", "cpu", engine);
        Assert.Equal(2, rc);
        Assert.Contains("divisible by 32", text, StringComparison.Ordinal);

        // a valid engine file that is not a detector engine (no spec metadata)
        var (_, graph) = EngineReader.ReadFile(engine, EngineTarget.Cpu);
        graph.Metadata.Remove("input_height");
        string plain = Path.Combine(_dir, "plain.engine");
        EngineWriter.WriteFile(plain, graph, EngineTarget.Cpu);
        var e = Assert.Throws<EngineFormatException>(() => EngineDetector.Load(plain, Device.Cpu));
        Assert.Contains("input_height", e.Message, StringComparison.Ordinal);

        // an engine for another target
        var (_, g2) = EngineReader.ReadFile(engine, EngineTarget.Cpu);
        string gpu = Path.Combine(_dir, "gpu.engine");
        EngineWriter.WriteFile(gpu, g2, EngineTarget.Cpu with { Architecture = "sm_90" });
        Assert.Throws<EngineFormatException>(() => EngineDetector.Load(gpu, Device.Cpu));
    }

    [Fact]
    public void Bench_runs_on_the_cpu_and_writes_json()
    {
        string json = Path.Combine(_dir, "bench.json");
        var (rc, text) = Capture("bench", "--arch", Arch, "--size", "64", "--batch", "1", "--devices", "cpu", "--seconds", "0.1", "--json", json);
        Assert.True(rc == 0, text);
        Assert.Contains("images/s", text, StringComparison.Ordinal);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        Assert.True(doc.RootElement.GetProperty("images_per_second").GetDouble() > 0);
        Assert.Equal(1, doc.RootElement.GetProperty("batch").GetInt32());
        Assert.True(doc.RootElement.GetProperty("latency_ms_p99").GetDouble() >= doc.RootElement.GetProperty("latency_ms_p50").GetDouble());

        // two contexts sharing the weights, each on its own thread
        (rc, text) = Capture("bench", "--arch", Arch, "--size", "64", "--batch", "1", "--devices", "cpu", "--streams", "2", "--seconds", "0.1", "--json", json);
        Assert.True(rc == 0, text);
        using (var two = JsonDocument.Parse(File.ReadAllText(json)))
        {
            Assert.Equal(2, two.RootElement.GetProperty("streams").GetInt32());
            Assert.True(two.RootElement.GetProperty("runs").GetInt64() >= 6);   // at least 3 per context
            Assert.Equal(1, two.RootElement.GetProperty("per_device").GetArrayLength());
        }

        (rc, text) = Capture("bench", "--arch", Arch, "--devices", "cpu", "--streams", "0");
        Assert.Equal(2, rc);
        Assert.Contains("--streams 0", text, StringComparison.Ordinal);
        (rc, text) = Capture("bench", "--arch", Arch, "--devices", "0,x");
        Assert.Equal(2, rc);
        Assert.Contains("--devices 0,x", text, StringComparison.Ordinal);
    }
}
