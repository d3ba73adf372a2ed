using System.Text;
using Osprey.Core.Backends;
using Osprey.Engine.Graph;

namespace Osprey.Engine.Serialization;

/// <summary>
/// Writes an engine file (layout in docs/engine.md): magic, format version, header (target, Osprey version,
/// kernel hash, build options), graph (metadata, values, nodes with typed attributes, inputs, outputs), the weights
/// blob (every constant in its final, kernel-ready dtype and layout), and an FNV-1a 64 checksum of all preceding bytes.
/// </summary>
public static class EngineWriter
{
    public static readonly byte[] Magic = "OSPREYEN"u8.ToArray();
    public const int FormatVersion = 2;

    public static byte[] Write(ComputeGraph graph, EngineTarget target, IReadOnlyDictionary<string, string>? buildOptions = null)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(target);
        graph.Compact();
        ShapeInference.Validate(graph);
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Magic);
            w.Write(FormatVersion);
            Str(w, target.Architecture);
            Str(w, target.OspreyVersion);
            Str(w, target.KernelHash);
            var opts = buildOptions ?? new Dictionary<string, string>();
            w.Write(opts.Count);
            foreach (var (k, v) in opts.OrderBy(p => p.Key, StringComparer.Ordinal)) { Str(w, k); Str(w, v); }
            w.Write(graph.Metadata.Count);
            foreach (var (k, v) in graph.Metadata) { Str(w, k); Str(w, v); }

            var values = graph.AllValues().ToList();
            long blob = 0;
            w.Write(values.Count);
            foreach (var v in values)
            {
                w.Write((byte)v.Kind);
                Str(w, v.Name);
                w.Write((byte)v.DType);
                w.Write((byte)v.Format);
                w.Write((byte)v.Shape.Rank);
                foreach (int d in v.Shape) w.Write(d);
                if (v.Kind == ValueKind.Constant) { w.Write(blob); w.Write(v.Bytes); blob += v.Bytes; }
            }
            w.Write(graph.Nodes.Count);
            foreach (var n in graph.Nodes)
            {
                w.Write((byte)n.Kind);
                Str(w, n.Name);
                w.Write(n.Inputs.Count);
                foreach (var i in n.Inputs) w.Write(i.Id);
                w.Write(n.Output.Id);
                Attrs(w, n.Attrs);
                Str(w, n.Algorithm ?? "");
            }
            w.Write(graph.Inputs.Count);
            foreach (var v in graph.Inputs) w.Write(v.Id);
            w.Write(graph.Outputs.Count);
            foreach (var v in graph.Outputs) w.Write(v.Id);
            w.Write(blob);
            foreach (var c in graph.Constants) w.Write(c.Data!);
        }
        ulong sum = EngineReader.Fnv1a(ms.GetBuffer().AsSpan(0, (int)ms.Length));
        ms.Write(BitConverter.GetBytes(sum));
        return ms.ToArray();
    }

    public static void WriteFile(string path, ComputeGraph graph, EngineTarget target, IReadOnlyDictionary<string, string>? buildOptions = null) =>
        File.WriteAllBytes(path, Write(graph, target, buildOptions));

    private static void Str(BinaryWriter w, string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        w.Write(b.Length);
        w.Write(b);
    }

    private static void Unary(BinaryWriter w, UnaryOp op)
    {
        w.Write((byte)op.Kind);
        w.Write(op.A);
        w.Write(op.B);
    }

    private static void Attrs(BinaryWriter w, NodeAttrs attrs)
    {
        switch (attrs)
        {
            case NoAttrs: break;
            case ConvAttrs a:
                var g = a.Geometry;
                foreach (int x in new[] { g.StrideH, g.StrideW, g.PadH, g.PadW, g.DilationH, g.DilationW, g.Groups }) w.Write(x);
                Unary(w, a.Activation);
                w.Write(a.HasBias);
                w.Write(a.HasResidual);
                break;
            case MatMulAttrs a:
                w.Write(a.TransposeA);
                w.Write(a.TransposeB);
                Unary(w, a.Activation);
                w.Write(a.HasBias);
                w.Write(a.HasResidual);
                break;
            case UnaryAttrs a: Unary(w, a.Op); break;
            case BinaryAttrs a: w.Write((byte)a.Op); break;
            case ReduceAttrs a:
                w.Write((byte)a.Op);
                w.Write((byte)a.Axes.Length);
                foreach (int x in a.Axes) w.Write(x);
                break;
            case AxisAttrs a: w.Write(a.Axis); break;
            case SoftmaxAttrs a: w.Write(a.Axis); w.Write(a.Log); break;
            case PoolAttrs a:
                var p = a.Geometry;
                w.Write((byte)a.Kind);
                foreach (int x in new[] { p.KernelH, p.KernelW, p.StrideH, p.StrideW, p.PadH, p.PadW }) w.Write(x);
                w.Write(p.CeilMode);
                w.Write(p.CountIncludePad);
                break;
            case ResizeAttrs a: w.Write((byte)a.Mode); break;
            case ViewAttrs a:
                w.Write((byte)a.Strides.Length);
                foreach (long s in a.Strides) w.Write(s);
                w.Write(a.Offset);
                break;
            default: throw new GraphException($"no serialisation for {attrs.GetType().Name}");
        }
    }
}
