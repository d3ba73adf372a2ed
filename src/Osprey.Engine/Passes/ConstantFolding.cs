using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Engine.Graph;
using Osprey.Engine.Runtime;

namespace Osprey.Engine.Passes;

/// <summary>
/// Evaluates every node whose inputs are all constants (or views of constants) on the CPU backend at build time and
/// replaces it by a constant: weight re-layouts (NCHW to NHWC), casts of weights to FP16/BF16, scalar arithmetic.
/// </summary>
public sealed class ConstantFolding : IGraphPass
{
    public string Name => "fold-constants";

    public bool Run(ComputeGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        bool changed = false;
        foreach (var n in graph.Nodes.ToArray())
        {
            if (n.Kind == OpKind.View || n.Inputs.Count == 0 || !n.Inputs.All(PassUtil.IsConstant) || graph.Outputs.Contains(n.Output)) continue;
            var data = Evaluate(n);
            var o = n.Output;
            var c = graph.AddConstant(o.Name, o.Shape, o.DType, o.Format, data);
            graph.ReplaceUses(o, c);
            graph.Remove(n);
            changed = true;
        }
        return changed;
    }

    /// <summary>Runs one node on the CPU over its constant inputs and returns the output bytes.</summary>
    internal static byte[] Evaluate(Node n)
    {
        var cpu = BackendRegistry.Cpu;
        var tensors = new Dictionary<Value, Tensor>();
        try
        {
            foreach (var v in n.Inputs)
            {
                var b = v.Buffer;
                if (!tensors.ContainsKey(b))
                {
                    var t = Tensor.Empty(b.Shape, b.DType, Device.Cpu, b.Format);
                    cpu.Upload(b.Data, t.Storage, 0);
                    tensors[b] = t;
                }
                if (v.IsAlias && !tensors.ContainsKey(v))
                    tensors[v] = Tensor.AsStrided(tensors[b].Storage, v.Shape, v.Strides, v.Offset, v.DType);
            }
            var y = Tensor.Empty(n.Output.Shape, n.Output.DType, Device.Cpu, n.Output.Format);
            tensors[n.Output] = y;
            using (var step = Step.Create(n, v => tensors[v])!) step.Run(cpu);
            var bytes = new byte[n.Output.Bytes];
            cpu.Download(y.Storage, 0, bytes);
            return bytes;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }
}
