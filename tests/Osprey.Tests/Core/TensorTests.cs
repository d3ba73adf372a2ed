using Osprey.Core;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Core;

[Collection(MemoryCountersCollection.MemoryCounters)]
public class TensorTests
{
    private static float[] Iota(int n) => Enumerable.Range(0, n).Select(i => (float)i).ToArray();

    [Fact]
    public void FromArray_round_trips_and_counts_memory()
    {
        long before = BackendRegistry.Cpu.Memory.LiveAllocations;
        using (var t = Tensor.FromArray(Iota(6), 2, 3))
        {
            Assert.Equal(new Shape(2, 3), t.Shape);
            Assert.Equal(Iota(6), t.ToArray<float>());
            Assert.True(t.IsContiguous());
        }
        Assert.Equal(before, BackendRegistry.Cpu.Memory.LiveAllocations);
    }

    [Fact]
    public void Views_share_storage_and_keep_it_alive()
    {
        var t = Tensor.FromArray(Iota(24), 2, 3, 4);
        using var p = t.Permute(2, 0, 1);
        t.Dispose();
        Assert.False(p.Storage.IsReleased);
        Assert.Equal(new Shape(4, 2, 3), p.Shape);
        var a = p.ToArray<float>();
        // p[i, j, k] = t[j, k, i] = j*12 + k*4 + i
        Assert.Equal(1 * 12 + 2 * 4 + 3, a[3 * 6 + 1 * 3 + 2]);
    }

    [Fact]
    public void Slice_with_step_and_negative_bounds()
    {
        using var t = Tensor.FromArray(Iota(10), 10);
        using var s = t.Slice(0, -8, 9, 3);
        Assert.Equal(new float[] { 2, 5, 8 }, s.ToArray<float>());
    }

    [Fact]
    public void Expand_broadcasts_with_zero_strides()
    {
        using var t = Tensor.FromArray(new float[] { 1, 2, 3 }, 3, 1);
        using var e = t.Expand(new Shape(2, 3, 4));
        Assert.Equal(0, e.Strides[0]);
        Assert.Equal(0, e.Strides[2]);
        var a = e.ToArray<float>();
        Assert.Equal(24, a.Length);
        Assert.Equal(3f, a[12 + 2 * 4 + 3]);
    }

    [Fact]
    public void Reshape_of_a_permuted_tensor_copies()
    {
        using var t = Tensor.FromArray(Iota(6), 2, 3);
        using var tt = t.Transpose(0, 1);
        using var r = tt.Reshape(-1);
        Assert.Equal(new float[] { 0, 3, 1, 4, 2, 5 }, r.ToArray<float>());
    }

    [Fact]
    public void ChannelsLast_is_a_memory_format_not_a_shape()
    {
        using var x = Tensor.FromArray(Iota(2 * 3 * 2 * 2), 2, 3, 2, 2);
        using var nhwc = Op.Contiguous(x, MemoryFormat.ChannelsLast);
        Assert.Equal(x.Shape, nhwc.Shape);
        Assert.True(nhwc.IsContiguous(MemoryFormat.ChannelsLast));
        Assert.False(nhwc.IsContiguous());
        Assert.Equal(x.ToArray<float>(), nhwc.ToArray<float>());
    }

    [Fact]
    public void Concat_and_pad_compose_from_copies()
    {
        using var a = Tensor.FromArray(Iota(4), 2, 2);
        using var b = Tensor.FromArray(new float[] { 9, 9 }, 2, 1);
        using var c = Op.Concat([a, b], 1);
        Assert.Equal(new float[] { 0, 1, 9, 2, 3, 9 }, c.ToArray<float>());
        using var p = Op.Pad(a, [(1, 0), (0, 1)], -1);
        Assert.Equal(new float[] { -1, -1, -1, 0, 1, -1, 2, 3, -1 }, p.ToArray<float>());
    }

    [Fact]
    public void Bad_shapes_name_the_op()
    {
        using var t = Tensor.FromArray(Iota(6), 2, 3);
        var e = Assert.Throws<OpArgumentException>(() => t.Reshape(4, 2));
        Assert.Contains("reshape", e.Message, StringComparison.Ordinal);
        Assert.Contains("[2, 3]", e.Message, StringComparison.Ordinal);
        Assert.Throws<OpArgumentException>(() => t.Slice(1, 0, 4));
        Assert.Throws<OpArgumentException>(() => t.Permute(0, 0));
        using var u = Tensor.FromArray(Iota(4), 4);
        var b = Assert.Throws<OpArgumentException>(() => Shape.Broadcast(t.Shape, u.Shape, "add"));
        Assert.Contains("add", b.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Scope_disposes_temporaries_and_keeps_results()
    {
        long before = BackendRegistry.Cpu.Memory.LiveAllocations;
        Tensor kept;
        using (var scope = new TensorScope())
        {
            _ = Tensor.Zeros(new Shape(3));
            kept = scope.Keep(Tensor.Zeros(new Shape(5)));
        }
        Assert.Equal(before + 1, BackendRegistry.Cpu.Memory.LiveAllocations);
        kept.Dispose();
        Assert.Equal(before, BackendRegistry.Cpu.Memory.LiveAllocations);
    }

    [Theory]
    [InlineData(1.0f, (ushort)0x3F80)]
    [InlineData(1.00390625f, (ushort)0x3F80)] // exactly halfway: ties to even (down)
    [InlineData(1.01171875f, (ushort)0x3F82)] // halfway, odd lower neighbour: up
    [InlineData(float.PositiveInfinity, (ushort)0x7F80)]
    public void BFloat16_rounds_to_nearest_even(float f, ushort bits) =>
        Assert.Equal(bits, BFloat16.FromFloat(f).Bits);
}
