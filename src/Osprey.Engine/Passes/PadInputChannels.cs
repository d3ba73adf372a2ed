using Osprey.Core.Tensors;
using Osprey.Engine.Graph;

namespace Osprey.Engine.Passes;

/// <summary>
/// Pads the channels of a 4-D graph input read only by convolutions (a detector's RGB images: 3 channels) up to a
/// multiple of <see cref="Multiple"/>, and gives each of those convolutions zero filters for the added channels, so the
/// outputs are unchanged as long as the caller leaves the added input channels zero (<c>EngineDetector</c> zeroes
/// them once; its loads write only the first channels). A 3-channel first convolution runs at a few % of the fp16 peak
/// (SSD300's 3->64 3x3: 0.80 ms per batch of 64 on an H200); cuDNN has faster kernels for 4 channels (see
/// <c>DetectorEngines.FastestInputChannelMultiple</c>).
/// An input read by anything else (a view, a cast, a grouped convolution, a convolution with a computed weight) is
/// left alone.
/// </summary>
public sealed class PadInputChannels : IGraphPass
{
    public PadInputChannels(int multiple)
    {
        if (multiple < 2 || multiple > 64) throw new ArgumentOutOfRangeException(nameof(multiple), $"pad-input-channels: multiple {multiple} (2 to 64)");
        Multiple = multiple;
    }

    public int Multiple { get; }

    public string Name => "pad-input-channels";

    public bool Run(ComputeGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var uses = graph.Uses();
        bool changed = false;
        foreach (var input in graph.Inputs)
        {
            if (input.Shape.Rank != 4 || input.Shape[1] % Multiple == 0 || graph.Outputs.Contains(input)) continue;
            if (!uses.TryGetValue(input, out var readers) || readers.Count == 0 || !readers.All(r => Paddable(r.Node, r.Index))) continue;
            int c = input.Shape[1], padded = (c + Multiple - 1) / Multiple * Multiple;
            foreach (var (conv, _) in readers)
            {
                var w = conv.Inputs[1];
                var shape = new Shape(w.Shape[0], padded, w.Shape[2], w.Shape[3]);
                conv.Inputs[1] = graph.AddConstant(w.Name, shape, w.DType, w.Format, PadWeight(w, shape));
            }
            input.Shape = new Shape(input.Shape[0], padded, input.Shape[2], input.Shape[3]);
            changed = true;
        }
        return changed;
    }

    /// <summary>A plain convolution reading the value as its data input, with a constant weight of as many input channels.</summary>
    private static bool Paddable(Node n, int index) =>
        n.Kind == OpKind.Conv2d && index == 0 && n.AttrsAs<ConvAttrs>().Geometry.Groups == 1
        && n.Inputs[1].Kind == ValueKind.Constant && n.Inputs[1].Shape.Rank == 4 && n.Inputs[1].Shape[1] == n.Inputs[0].Shape[1];

    /// <summary>The weight's bytes laid out for <paramref name="shape"/> in the weight's own format, zeros in the added channels.</summary>
    private static byte[] PadWeight(Value w, Shape shape)
    {
        int size = w.DType.SizeOf();
        var from = Value.DenseStrides(w.Shape, w.Format);
        var to = Value.DenseStrides(shape, w.Format);
        var src = w.Data!;
        var dst = new byte[checked(shape.Numel * size)];
        for (int o = 0; o < w.Shape[0]; o++)
            for (int c = 0; c < w.Shape[1]; c++)
                for (int y = 0; y < w.Shape[2]; y++)
                    for (int x = 0; x < w.Shape[3]; x++)
                    {
                        long s = o * from[0] + c * from[1] + y * from[2] + x * from[3];
                        long d = o * to[0] + c * to[1] + y * to[2] + x * to[3];
                        Array.Copy(src, s * size, dst, d * size, size);
                    }
        return dst;
    }
}
