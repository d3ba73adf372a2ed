using System.Threading;
using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Tensors;
using Osprey.Detection.Models;
using Osprey.Engine.Graph;

namespace Osprey.Engine.Tracing;

/// <summary>
/// Builds a <see cref="ComputeGraph"/> by running unchanged model code on a fresh meta device: load the weights
/// onto <see cref="Device"/>, make inputs with <see cref="Input"/>, run the forward pass, name the results with
/// <see cref="Output"/>, then <see cref="Finish"/>. Dispose detaches the device.
/// </summary>
public sealed class GraphTracer : IDisposable
{
    private static int s_nextDevice;
    private readonly TracingBackend _backend;
    private bool _disposed;

    public GraphTracer()
    {
        _backend = new TracingBackend(Interlocked.Increment(ref s_nextDevice));
        BackendRegistry.Attach(_backend);
    }

    /// <summary>The meta device to load weights and create tensors on.</summary>
    public Device Device => _backend.Device;

    public ComputeGraph Graph => _backend.Graph;

    /// <summary>A graph input as a tensor on the meta device (no data).</summary>
    public Tensor Input(string name, Shape shape, DType dtype = DType.Float32, MemoryFormat format = MemoryFormat.ChannelsLast)
    {
        var t = Tensor.Empty(shape, dtype, Device, format);
        _backend.BindInput(t, Graph.AddInput(name, shape, dtype, format));
        return t;
    }

    /// <summary>Names a result. Views and non-activations are first copied into a dense contiguous buffer.</summary>
    public void Output(string name, Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        var v = _backend.Resolve(t);
        if (v.IsAlias || v.Kind != ValueKind.Activation || Graph.Outputs.Contains(v))
        {
            var format = v.DenseFormat ?? MemoryFormat.Contiguous;
            v = Graph.AddNode(OpKind.Copy, NoAttrs.Instance, [v], v.Shape, v.DType, format).Output;
        }
        v.Name = name;
        Graph.Outputs.Add(v);
    }

    /// <summary>Validates and compacts the recorded graph.</summary>
    public ComputeGraph Finish()
    {
        Graph.Compact();
        ShapeInference.Validate(Graph);
        return Graph;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        BackendRegistry.Detach(_backend);
    }

    /// <summary>
    /// Traces a detection network: weights loaded channels-last onto the meta device, input "images"
    /// [batch, 3, height, width] NHWC float32, outputs "class_logits" and "box_regression"; the level grid sizes
    /// go into the graph's metadata ("grids"). The class count is the weights' (<see cref="Architecture.ClassesIn"/>) where
    /// it can be told, else the architecture's reference count.
    /// </summary>
    public static ComputeGraph TraceDetector(Architecture architecture, StateDict weights, string source, int batch, int height, int width)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        using var tracer = new GraphTracer();
        // the class count the weights were trained for (a fine-tuned or `osprey train` checkpoint), as Detector.Load reads it
        using var model = architecture.ClassesIn(weights) is int classes ? architecture.CreateFor(classes) : architecture.Create();
        model.Load(weights, source, tracer.Device, MemoryFormat.ChannelsLast);
        using var images = tracer.Input("images", new Shape(batch, 3, height, width));
        using (var heads = model.Forward(images))
        {
            tracer.Output("class_logits", heads.ClassLogits);
            tracer.Output("box_regression", heads.BoxRegression);
            tracer.Graph.Metadata["architecture"] = architecture.Name;
            tracer.Graph.Metadata["classes"] = model.Classes.ToString(System.Globalization.CultureInfo.InvariantCulture);
            tracer.Graph.Metadata["grids"] = string.Join(",", heads.Grids.Select(g => $"{g.Height}x{g.Width}"));
        }
        return tracer.Finish();
    }
}
