using Osprey.Core.Autograd;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Training.Loop;
using Osprey.Detection.Training.Optim;

namespace Osprey.Tests.Training;

/// <summary>Gradients in flat buffers (<see cref="Parameter.UseGradBuffer"/>, <see cref="FlatGradients"/>): backward writes and
/// accumulates in place, <see cref="Parameter.ZeroGrad"/> only forgets, bad buffers are refused; the data-parallel buckets
/// reduce the flat buffer whole (no packing) with the same means; the multi-tensor step declines the CPU.</summary>
public class FlatGradientTests
{
    [Fact]
    public void Backward_writes_into_the_buffer_and_accumulates_in_place()
    {
        using var flat = Tensor.Full(new Shape(10), 99, DType.Float32);
        using var w = new Parameter(Tensor.FromArray(new float[] { 1, 2, 3, 4, 5, 6 }, 2, 3), "w");
        using (var slice = flat.Slice(0, 2, 8))
        using (var home = slice.Reshape(2, 3))
            w.UseGradBuffer(home);
        using var x = Tensor.FromArray(new float[] { 0.5f, -1, 2, 3, 0, -2 }, 2, 3);
        for (int pass = 1; pass <= 2; pass++)
        {
            using var scope = new TensorScope();
            using var tape = new GradTape([w]);
            tape.Backward(Op.Sum(Op.Mul(w.Value, x)));
        }
        Assert.Same(flat.Storage, w.Grad!.Storage);
        Assert.Equal(new float[] { 1, -2, 4, 6, 0, -4 }, w.Grad.ToArray<float>());
        Assert.Equal(new float[] { 99, 99, 1, -2, 4, 6, 0, -4, 99, 99 }, flat.ToArray<float>());
        w.ZeroGrad();
        Assert.Null(w.Grad);
        Assert.NotNull(w.GradBuffer);
        using (var scope = new TensorScope())
        using (var tape = new GradTape([w]))
            tape.Backward(Op.Sum(Op.Mul(w.Value, x)));
        Assert.Equal(new float[] { 99, 99, 0.5f, -1, 2, 3, 0, -2, 99, 99 }, flat.ToArray<float>()); // overwritten, not added

        using var wrong = Tensor.Zeros(new Shape(3, 2));
        Assert.Contains("w", Assert.Throws<ArgumentException>(() => w.UseGradBuffer(wrong)).Message);
        using var half = Tensor.Zeros(new Shape(2, 3), DType.Float16);
        Assert.Throws<ArgumentException>(() => w.UseGradBuffer(half));
        using var t = Tensor.Zeros(new Shape(3, 2));
        using var strided = t.Transpose(0, 1);
        Assert.Throws<ArgumentException>(() => w.UseGradBuffer(strided));
        w.UseGradBuffer(null);
        Assert.Null(w.GradBuffer);
    }

    [Fact]
    public void Buckets_reduce_flat_gradients_whole_with_the_same_means()
    {
        const int Ranks = 2;
        using var group = new HostAllReduceGroup(Ranks);
        var reduce = group.Ranks();
        var ps = new List<Parameter>[Ranks];
        var flats = new FlatGradients[Ranks];
        for (int r = 0; r < Ranks; r++)
        {
            ps[r] = [new Parameter(Tensor.Zeros(new Shape(2, 3)), "a"), new Parameter(Tensor.Zeros(new Shape(1)), "b"),
                new Parameter(Tensor.Zeros(new Shape(3), DType.Float16), "c"), new Parameter(Tensor.Zeros(new Shape(2)), "d")];
            flats[r] = new FlatGradients(ps[r]);
            Assert.Equal(2, flats[r].Buffers.Count); // float32 (9 elements), float16 (3)
            Assert.Equal(9, flats[r].Buffers[0].Numel);
        }
        var grads = new Tensor[Ranks][];
        for (int r = 0; r < Ranks; r++)
        {
            grads[r] = new Tensor[4];
            for (int i = 0; i < 4; i++)
            {
                var home = ps[r][i].GradBuffer!;
                using var scope = new TensorScope();
                Op.CopyInto(Op.Cast(Tensor.Full(home.Shape, 10 * r + i, DType.Float32), home.DType), home);
                grads[r][i] = home;
            }
            using (var whole = GradientBuckets.ContiguousRun(grads[r], DType.Float32))
                Assert.Equal(9, whole!.Numel); // a, b, d: consecutive in the float32 buffer
        }
        DataParallel.OnEveryRank(Ranks, r =>
        {
            using var b = new GradientBuckets(reduce[r]);
            b.AverageInPlace(grads[r]);
        });
        for (int r = 0; r < Ranks; r++)
        {
            for (int i = 0; i < 4; i++)
            {
                using var f = Op.Cast(grads[r][i], DType.Float32);
                Assert.All(f.ToArray<float>(), v => Assert.Equal(5 + i, v));
            }
            foreach (var p in ps[r]) p.Dispose();
            flats[r].Dispose();
        }
        // gradients that are not one run (out of order) go through the packing path
        using var x = Tensor.Zeros(new Shape(4));
        using var x0 = x.Slice(0, 0, 2);
        using var x1 = x.Slice(0, 2, 4);
        Assert.Null(GradientBuckets.ContiguousRun([x1, x0], DType.Float32));
    }

    [Fact]
    public void The_multi_tensor_step_declines_cpu_tensors()
    {
        using var opt = new Sgd(new SgdOptions());
        using var p = Tensor.Zeros(new Shape(3));
        using var g = Tensor.Full(new Shape(3), 1, DType.Float32);
        Assert.Null(opt.TryStepMultiTensor([p], [g], 1f, true, 10));
        Assert.Equal(0, opt.Steps);
        Assert.Equal(new float[3], p.ToArray<float>());
    }
}
