using System.Globalization;
using Osprey.Core;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Cuda.Runtime;
using Osprey.Detection;
using Osprey.Detection.Boxes;
using Osprey.Detection.Gpu;
using Osprey.Detection.Models;
using Osprey.Engine.Graph;
using Osprey.Engine.Serialization;
using Osprey.Vision.Imaging;
using Osprey.Vision.Transforms;

namespace Osprey.Engine.Runtime;

/// <summary>
/// A detector engine loaded for one device: the same outputs as <see cref="Detector"/> (decode, pre-processing, network,
/// decode + NMS, boxes in original pixels) from a planned, optimised graph. Weights are uploaded once
/// (<see cref="EngineWeights"/>); this object is one execution context (its own arena and post-processing buffers).
/// Batches up to the built maximum run by padding to it (the network always runs the built batch; decode + NMS run on
/// the real images only). On CUDA, with <see cref="UseGraphs"/>, the network plus GPU decode + NMS are captured as one CUDA
/// graph per batch size (after one eager warm-up run, so every buffer exists before capture) and replayed.
/// Not thread-safe.
/// </summary>
public sealed class EngineDetector : IDisposable
{
    private readonly EngineWeights _weights;
    private readonly bool _ownsWeights;
    private readonly Executor _exec;
    private readonly Preprocessor? _cpuPre;
    private readonly GpuPreprocessor? _gpuPre;
    private readonly GpuPostProcessor? _gpuPost;
    private readonly CudaBackend? _cuda;
    private readonly CudaWorkStream? _stream;
    private readonly Tensor _zeros;
    private readonly Tensor? _deviceAnchors;
    private readonly float[] _anchors;
    private readonly int[] _anchorCounts;
    private readonly Dictionary<int, (CudaGraph Graph, GpuDetections Result)> _graphs = [];
    private readonly ImageSize[][] _sizesByBatch;
    private PostProcessorBase? _hostPost;
    private bool _disposed;

    /// <summary>Loads an engine file for a device (its target must be this device's: cpu, or the GPU's sm_XY).</summary>
    public static EngineDetector Load(string path, Device device, bool ownStream = false)
    {
        ArgumentNullException.ThrowIfNull(path);
        var target = TargetFor(device);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new EngineFormatException($"{path}: cannot read the engine file: {e.Message}", e);
        }
        var (_, graph) = EngineReader.Read(bytes, target, path);
        return new EngineDetector(graph, device, path, ownStream: ownStream);
    }

    /// <summary>The engine target of a device: <see cref="EngineTarget.Cpu"/>, or the CUDA GPU's architecture with the CUDA kernels' build id.</summary>
    public static EngineTarget TargetFor(Device device)
    {
        if (device.Type == DeviceType.Cpu) return EngineTarget.Cpu;
        if (device.Type != DeviceType.Cuda) throw new OspreyException($"engine: device {device}: engines run on cpu or cuda devices");
        if (!BackendRegistry.HasProvider(DeviceType.Cuda)) CudaBackend.Register();
        if (!CudaBackend.IsAvailable(out string why)) throw new OspreyException($"device {device}: no usable CUDA GPU ({why})");
        var backend = (CudaBackend)BackendRegistry.Get(device);
        return new EngineTarget(backend.Info.Architecture, EngineTarget.CurrentVersion,
            typeof(CudaBackend).Assembly.ManifestModule.ModuleVersionId.ToString("N", CultureInfo.InvariantCulture));
    }

    /// <param name="graph">A graph built by <see cref="DetectorEngines.Build"/> (or read from its file).</param>
    /// <param name="weights">Weights to share with other contexts of the same graph on this device; null uploads them.</param>
    /// <param name="ownStream">CUDA: queue this context's work on a stream of its own (contexts on other threads run
    /// concurrently); otherwise on the calling thread's stream of the backend.</param>
    public EngineDetector(ComputeGraph graph, Device device, string source = "engine", EngineWeights? weights = null, bool ownStream = false)
    {
        ArgumentNullException.ThrowIfNull(graph);
        (Spec, Grids) = DetectorEngines.ReadSpec(graph, source);
        Architecture = Architectures.Get(Spec.Architecture);
        if (device.Type == DeviceType.Cuda) _ = TargetFor(device);   // registers and opens the device, or a clear error
        else if (device.Type != DeviceType.Cpu) throw new OspreyException($"engine: device {device}: engines run on cpu or cuda devices");
        // 16-bit engines run on the CPU too (its backend stores float16/bfloat16 and computes in float32: slow, for
        // accuracy comparisons such as `Osprey.Bench engine-accuracy --device cpu`); bfloat16 engines only there: the GPU
        // decode reads float32 or float16 heads and no bfloat16 engine has been run on a GPU
        if (Spec.Precision == DType.BFloat16 && device.Type != DeviceType.Cpu)
            throw new OspreyException($"{source}: a bf16 engine runs on the CPU only (got {device}); build fp16 or fp32 for a GPU");
        var backend = BackendRegistry.Get(device);
        Device = device;
        _ownsWeights = weights is null;
        _weights = weights ?? new EngineWeights(graph, backend);
        if (ownStream && backend is CudaBackend cb) _stream = cb.CreateStream();   // after the weights' upload: it waits for it
        _sizesByBatch = new ImageSize[Spec.Batch + 1][];
        for (int n = 1; n <= Spec.Batch; n++) _sizesByBatch[n] = new ImageSize[n];
        var family = Architecture.Family;
        var input = new ImageSize(Spec.Height, Spec.Width);
        if (family == DetectorFamily.RetinaNet)
        {
            var gen = Architecture.Anchors();
            _anchors = gen.Generate(input, Grids);
            _anchorCounts = new int[Grids.Length];
            for (int l = 0; l < Grids.Length; l++) _anchorCounts[l] = Grids[l].Height * Grids[l].Width * gen.AnchorsPerLocation(l);
        }
        else
        {
            var gen = DefaultBoxGenerator.Ssd300();
            _anchors = gen.Generate(input, Grids);
            _anchorCounts = new int[Grids.Length];
            for (int l = 0; l < Grids.Length; l++) _anchorCounts[l] = Grids[l].Height * Grids[l].Width * gen.BoxesPerLocation(l);
        }
        using var scope = Scope(backend);
        try
        {
            _exec = new Executor(graph, backend, weights: _weights);
            // an input padded beyond 3 channels (PadInputChannels) has zero filters for the added channels, which must
            // hold zeros (not NaN/Inf): zeroed once here; the input's bytes are never shared, and loads write channels 0-2
            var images = _exec.Input("images");
            if (images.Shape[1] != 3) backend.Fill(images, 0);
            _zeros = Tensor.Zeros(new Shape(1, 3, Spec.Height, Spec.Width), DType.Float32, device);
            if (device.Type == DeviceType.Cuda)
            {
                _cuda = (CudaBackend)backend;
                _gpuPre = new GpuPreprocessor(Spec.Resize, Architecture.Normalization, device, DType.Float32, MemoryFormat.ChannelsLast);
                _gpuPost = new GpuPostProcessor(family, Spec.PostProcess, family == DetectorFamily.RetinaNet ? BoxCoder.RetinaNet : BoxCoder.Ssd, device);
                _deviceAnchors = Tensor.FromSpan<float>(_anchors, new Shape(_anchors.Length / 4, 4), device);
            }
            else _cpuPre = new Preprocessor(Spec.Resize, Architecture.Normalization, device);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public DetectorEngineSpec Spec { get; }
    public Architecture Architecture { get; }
    public ImageSize[] Grids { get; }
    public Device Device { get; }
    public int MaxBatch => Spec.Batch;
    public Executor Executor => _exec;
    public EngineWeights Weights => _weights;

    /// <summary>The context's own CUDA stream (null: the calling thread's stream of the backend).</summary>
    public CudaWorkStream? Stream => _stream;

    private CudaBackend.StreamScope Scope() => Scope(_cuda);

    private CudaBackend.StreamScope Scope(IBackend? backend) =>
        _stream is not null && backend is CudaBackend cb ? cb.Use(_stream) : default;

    /// <summary>Waits for this context's queued work.</summary>
    public void Synchronize()
    {
        using var scope = Scope();
        _exec.Backend.Synchronize();
    }

    /// <summary>
    /// On CUDA: capture the network + decode + NMS as one CUDA graph per batch size and replay it (default on). The
    /// session-2 replay failure on the H100 was the memory plan reusing the input's bytes: the eager warm-up before the
    /// capture overwrote the loaded input, so the first replay read garbage (inputs now live for the whole run).
    /// </summary>
    public bool UseGraphs { get; init; } = true;

    /// <summary>CUDA graphs captured so far (one per batch size used).</summary>
    public int CapturedGraphs => _graphs.Count;

    /// <summary>Detects objects in any number of images, in chunks of at most <see cref="MaxBatch"/>.</summary>
    public IReadOnlyList<DetectedObject>[] Detect(IReadOnlyList<RgbImage> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        var all = new IReadOnlyList<DetectedObject>[images.Count];
        for (int start = 0; start < images.Count; start += MaxBatch)
        {
            int n = Math.Min(MaxBatch, images.Count - start);
            var chunk = new RgbImage[n];
            for (int i = 0; i < n; i++) chunk[i] = images[start + i];
            using var batch = Preprocess(chunk);
            var found = Infer(batch);
            Array.Copy(found, 0, all, start, n);
        }
        return all;
    }

    /// <summary>Pre-processing (on the GPU for a CUDA engine) at the engine's resize policy; at most <see cref="MaxBatch"/> images.</summary>
    public ImageBatch Preprocess(IReadOnlyList<RgbImage> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0 || images.Count > MaxBatch)
            throw new ArgumentException($"engine: {images.Count} images in a batch; this engine takes 1 to {MaxBatch} (built with --batch {MaxBatch})");
        using var scope = Scope();
        return _gpuPre is not null ? _gpuPre.Batch(images) : _cpuPre!.Batch(images);
    }

    /// <summary>Copies a pre-processed batch into the network input, zero-padded to the engine's size.</summary>
    public void LoadInput(ImageBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var x = batch.Images;
        int n = x.Shape[0], h = x.Shape[2], w = x.Shape[3];
        if (n > MaxBatch || h > Spec.Height || w > Spec.Width || x.Shape[1] != 3)
            throw new ArgumentException($"engine: batch {x.Shape} does not fit the engine input [{MaxBatch}, 3, {Spec.Height}, {Spec.Width}]");
        using var scope = Scope();
        using var input = _exec.Input("images").Slice(1, 0, 3);   // the image channels (the padded ones stay zero)
        if (h < Spec.Height || w < Spec.Width)
            for (int i = 0; i < n; i++)
            {
                using var slot = input.Slice(0, i, i + 1);
                Op.CopyInto(_zeros, slot);
            }
        using var rows = input.Slice(0, 0, n);
        using var hs = rows.Slice(2, 0, h);
        using var dst = hs.Slice(3, 0, w);
        Op.CopyInto(x, dst);
    }

    /// <summary>Runs the network alone (eagerly) on the loaded input; results in <see cref="Executor"/>'s outputs.</summary>
    public void RunNetwork()
    {
        using var scope = Scope();
        _exec.Run();
    }

    /// <summary>Network, decode + NMS and rescaling for a pre-processed batch (see <see cref="Preprocess"/>).</summary>
    public IReadOnlyList<DetectedObject>[] Infer(ImageBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        using var scope = Scope();
        if (_gpuPost is not null) return Collect(Submit(batch));
        LoadInput(batch);
        int n = batch.Images.Shape[0];
        var sizes = _sizesByBatch[n];
        for (int i = 0; i < n; i++) sizes[i] = new ImageSize(batch.Resized[i].Height, batch.Resized[i].Width);
        _exec.Run();
        var found = PostProcessOnHost(sizes);
        Rescale(found, batch, sizes);
        return found;
    }

    /// <summary>
    /// CUDA: queues the network and decode + NMS of a pre-processed batch and returns at once, so the host can prepare the
    /// next batch (decode, <see cref="Preprocess"/>: its pinned staging and upload) while the GPU runs this one. Collect the
    /// detections with <see cref="Collect"/> before the next Submit on this context.
    /// </summary>
    public PendingDetections Submit(ImageBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (_gpuPost is null) throw new InvalidOperationException("engine: Submit needs a CUDA engine (use Infer on the CPU)");
        using var scope = Scope();
        LoadInput(batch);
        int n = batch.Images.Shape[0];
        var sizes = _sizesByBatch[n];
        for (int i = 0; i < n; i++) sizes[i] = new ImageSize(batch.Resized[i].Height, batch.Resized[i].Width);
        var owned = Enqueue(sizes, out var shared);
        return new PendingDetections(this, batch, sizes, owned, shared);
    }

    /// <summary>Waits for a submitted batch and returns its detections in original-image pixels.</summary>
    public IReadOnlyList<DetectedObject>[] Collect(PendingDetections pending)
    {
        ArgumentNullException.ThrowIfNull(pending);
        if (pending.Engine != this) throw new ArgumentException("engine: the batch was submitted to another engine context");
        using var scope = Scope();
        IReadOnlyList<DetectedObject>[] found;
        try
        {
            found = GpuPostProcessor.Download(pending.Owned ?? pending.Shared!);
        }
        finally
        {
            pending.Owned?.Dispose();
        }
        Rescale(found, pending.Batch, pending.Sizes);
        return found;
    }

    private static void Rescale(IReadOnlyList<DetectedObject>[] found, ImageBatch batch, ImageSize[] sizes)
    {
        for (int i = 0; i < found.Length; i++)
        {
            var list = (List<DetectedObject>)found[i];
            var original = new ImageSize(batch.Original[i].Height, batch.Original[i].Width);
            for (int j = 0; j < list.Count; j++) list[j] = BoxOps.Rescale(list[j], sizes[i], original);
        }
    }

    /// <summary>
    /// CUDA: queues the network and decode + NMS for the loaded input of <paramref name="sizes"/>.Length images, as a
    /// graph replay when <see cref="UseGraphs"/> (then the result is owned by the graph, overwritten by the next replay of
    /// that batch size, and returned in <paramref name="graphResult"/> with null returned), else eagerly (a new result,
    /// returned; the caller disposes it).
    /// </summary>
    public GpuDetections? Enqueue(ReadOnlySpan<ImageSize> sizes, out GpuDetections? graphResult)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_gpuPost is null) throw new InvalidOperationException("engine: Enqueue needs a CUDA engine");
        int n = sizes.Length;
        if (n < 1 || n > MaxBatch) throw new ArgumentException($"engine: {n} images; this engine takes 1 to {MaxBatch}");
        graphResult = null;
        using var scope = Scope();
        if (!UseGraphs)
        {
            _exec.Run();
            return RunPost(n, sizes);
        }
        if (!_graphs.TryGetValue(n, out var g))
        {
            if (_graphs.Count == 0)
            {
                // size every post-processing buffer for the maximum batch before the first capture: they only grow, and a
                // reallocation would leave earlier graphs reading freed memory
                var full = new ImageSize[MaxBatch];
                for (int i = 0; i < MaxBatch; i++) full[i] = i < n ? sizes[i] : new ImageSize(Spec.Height, Spec.Width);
                _gpuPost.SetSizes(full);
                _exec.Run();
                RunPost(MaxBatch, full).Dispose();
            }
            _gpuPost.SetSizes(sizes);
            // warm-up: kernels compiled, convolution plans built, post-processing scratch allocated, so capture allocates
            // only from the caching allocator's free blocks and nothing synchronises
            _exec.Run();
            RunPost(n, sizes).Dispose();
            _cuda!.Synchronize();
            GpuDetections? result = null;
            var copy = sizes.ToArray();
            var graph = _cuda.CaptureGraph(() =>
            {
                _exec.Run();
                result = RunPost(n, copy);
            });
            g = (graph, result!);
            _graphs[n] = g;
        }
        else _gpuPost.SetSizes(sizes);
        g.Graph.Launch();
        graphResult = g.Result;
        return null;
    }

    /// <summary>
    /// Decode + NMS alone (eagerly, for per-stage timing) on the current network outputs for the first
    /// <paramref name="sizes"/>.Length images; boxes in resized-image pixels.
    /// </summary>
    public IReadOnlyList<DetectedObject>[] PostProcess(ReadOnlySpan<ImageSize> sizes)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (sizes.Length < 1 || sizes.Length > MaxBatch) throw new ArgumentException($"engine: {sizes.Length} images; this engine takes 1 to {MaxBatch}");
        if (_gpuPost is null) return PostProcessOnHost(sizes.ToArray());
        using var scope = Scope();
        _gpuPost.SetSizes(sizes);
        using var d = RunPost(sizes.Length, sizes);
        return GpuPostProcessor.Download(d);
    }

    private GpuDetections RunPost(int n, ReadOnlySpan<ImageSize> sizes)
    {
        var logits = _exec.Output("class_logits");
        var regs = _exec.Output("box_regression");
        if (n == MaxBatch) return _gpuPost!.Run(logits, regs, _deviceAnchors!, _anchorCounts, sizes);
        using var l = logits.Slice(0, 0, n);
        using var r = regs.Slice(0, 0, n);
        return _gpuPost!.Run(l, r, _deviceAnchors!, _anchorCounts, sizes);
    }

    /// <summary>A head output as float32 values (float16 heads cast first).</summary>
    private static float[] Floats(Tensor t)
    {
        if (t.DType == DType.Float32) return t.ToArray<float>();
        using var f = Osprey.Core.Ops.Op.Cast(t, DType.Float32);
        return f.ToArray<float>();
    }

    private IReadOnlyList<DetectedObject>[] PostProcessOnHost(ImageSize[] sizes)
    {
        var logitsT = _exec.Output("class_logits");
        float[] logits = Floats(logitsT), regs = Floats(_exec.Output("box_regression"));
        int a = logitsT.Shape[1], k = logitsT.Shape[2];
        _hostPost ??= Architecture.Family == DetectorFamily.RetinaNet
            ? new RetinaNetPostProcessor(Spec.PostProcess, BoxCoder.RetinaNet) : new SsdPostProcessor(Spec.PostProcess, BoxCoder.Ssd);
        var results = new IReadOnlyList<DetectedObject>[sizes.Length];
        for (int i = 0; i < sizes.Length; i++)
        {
            var found = new List<DetectedObject>();
            var l = logits.AsSpan(i * a * k, a * k);
            var r = regs.AsSpan(i * a * 4, a * 4);
            if (_hostPost is RetinaNetPostProcessor retina) retina.Run(l, r, _anchors, _anchorCounts, k, sizes[i], found);
            else ((SsdPostProcessor)_hostPost).Run(l, r, _anchors, k, sizes[i], found);
            results[i] = found;
        }
        return results;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        using (Scope()) DisposeContext();
        _stream?.Dispose();
        if (_ownsWeights) _weights?.Dispose();
    }

    private void DisposeContext()
    {
        foreach (var (graph, result) in _graphs.Values)
        {
            graph.Dispose();
            result.Dispose();
        }
        _graphs.Clear();
        _gpuPost?.Dispose();
        _gpuPre?.Dispose();
        _deviceAnchors?.Dispose();
        _zeros?.Dispose();
        _exec?.Dispose();
    }
}

/// <summary>A batch queued by <see cref="EngineDetector.Submit"/>, not yet collected.</summary>
public sealed class PendingDetections
{
    internal PendingDetections(EngineDetector engine, ImageBatch batch, ImageSize[] sizes, GpuDetections? owned, GpuDetections? shared)
    {
        Engine = engine;
        Batch = batch;
        Sizes = sizes;
        Owned = owned;
        Shared = shared;
    }

    internal EngineDetector Engine { get; }
    internal ImageBatch Batch { get; }
    internal ImageSize[] Sizes { get; }
    internal GpuDetections? Owned { get; }
    internal GpuDetections? Shared { get; }
}
