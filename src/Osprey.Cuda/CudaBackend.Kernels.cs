using Osprey.Core.Tensors;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda;

// Shared launch plumbing for the op families: kernel names per dtype, grid sizing, pointers.
public sealed partial class CudaBackend
{
    private const int Block = 256;

    /// <summary>Kernel name suffix of each dtype, indexed by (int)DType (a property: the partial files' static fields initialise in no set order).</summary>
    internal static ReadOnlySpan<string> Suffixes => (string[])["f32", "f16", "bf16", "i8", "u8", "i32", "i64", "b8"];

    /// <summary>prefix + dtype suffix for every dtype, built once so launches do not allocate names.</summary>
    internal static string[] NamesByDType(string prefix)
    {
        var names = new string[Suffixes.Length];
        for (int i = 0; i < names.Length; i++) names[i] = prefix + Suffixes[i];
        return names;
    }

    /// <summary>prefix + element size (1, 2, 4, 8), indexed by log2 of the size.</summary>
    internal static string[] NamesBySize(string prefix, string suffix = "") => [prefix + "1" + suffix, prefix + "2" + suffix, prefix + "4" + suffix, prefix + "8" + suffix];

    internal static int SizeIndex(int elementSize) => elementSize switch { 1 => 0, 2 => 1, 4 => 2, _ => 3 };

    /// <summary>Blocks for a grid-stride loop over <paramref name="work"/> items: enough to fill the GPU twice over, no more.</summary>
    internal uint GridFor(long work, int block = Block)
    {
        if (work <= 0) return 0;
        long blocks = (work + block - 1) / block;
        long cap = (long)Info.Multiprocessors * (2048 / block) * 2;
        return (uint)Math.Min(blocks, Math.Max(cap, 1));
    }

    internal static ulong Ptr(Tensor t) => (ulong)t.DataPointer;

    internal static bool Aligned16(Tensor t) => (t.DataPointer & 15) == 0;

    internal nint Fn(string module, string kernel) => Kernels.Function(module, kernel);

    /// <summary>Whether operand <paramref name="j"/> of a layout is one value repeated (stride 0 everywhere).</summary>
    internal static unsafe bool IsBroadcastScalar(in KernelLayout l, int j)
    {
        for (int d = 0; d < l.Rank; d++) if (l.Stride(j, d) != 0) return false;
        return true;
    }
}
