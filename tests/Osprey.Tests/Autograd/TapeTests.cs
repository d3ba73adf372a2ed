using Osprey.Core;
using Osprey.Core.Autograd;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Autograd;

/// <summary>The tape's semantics: what it records, accumulation, ownership of saved tensors, errors.</summary>
public class TapeTests
{
    [Fact]
    public void Nothing_is_recorded_without_a_tape_or_for_unwatched_inputs()
    {
        using var x = Rand.Tensor(1, new Shape(3, 4));
        using (var y = Op.Relu(x)) Assert.False(y.IsDisposed);
        using var w = new Parameter(Rand.Tensor(2, new Shape(3, 4)), "w");
        using var tape = new GradTape([w]);
        using (var y = Op.Relu(x)) Assert.False(tape.RequiresGrad(y));
        Assert.Equal(0, tape.NodeCount);
        using var z = Op.Mul(x, w.Value);
        Assert.True(tape.RequiresGrad(z));
        Assert.Equal(1, tape.NodeCount);
        using (GradTape.NoGrad())
        using (var u = Op.Mul(z, z)) Assert.False(tape.RequiresGrad(u));
        Assert.Equal(1, tape.NodeCount);
    }

    [Fact]
    public void Gradients_accumulate_over_uses_and_over_backward_passes_until_zero_grad()
    {
        using var w = new Parameter(Tensor.FromArray(new[] { 1f, 2f, 3f }, 3), "w");
        for (int pass = 1; pass <= 2; pass++)
        {
            using var tape = new GradTape([w]);
            using var a = Op.Mul(w.Value, w.Value);     // w used twice in one op: d(w^2) = 2w
            using var b = Op.Add(a, w.Value);           // and again: + 1
            using var s = Op.Sum(b);
            tape.Backward(s);
            Assert.Equal(new[] { 3f * pass, 5f * pass, 7f * pass }, w.Grad!.ToArray<float>());
        }
        w.ZeroGrad();
        Assert.Null(w.Grad);
    }

    [Fact]
    public void Gradients_reach_watched_inputs_and_follow_a_given_output_gradient()
    {
        using var x = Tensor.FromArray(new[] { 1f, -2f, 3f }, 3);
        using var tape = new GradTape();
        tape.Watch(x);
        using var y = Op.Relu(x);
        using var g = Tensor.FromArray(new[] { 10f, 20f, 30f }, 3);
        tape.Backward(y, g);
        using var gx = tape.TakeGrad(x);
        Assert.Equal(new[] { 10f, 0f, 30f }, gx!.ToArray<float>());
    }

    [Fact]
    public void Temporaries_disposed_by_the_model_stay_alive_for_backward_and_are_freed_after_it()
    {
        using var w = new Parameter(Rand.Tensor(3, new Shape(4, 3, 3, 3)), "w");
        using var x = Rand.Tensor(4, new Shape(1, 3, 6, 6));
        Storage hidden;
        using var tape = new GradTape([w]);
        Tensor loss;
        using (var scope = new TensorScope())
        {
            var y = Op.Conv2d(x, w.Value, Conv2dParams.Square(1, 1));
            var h = Op.Sigmoid(y);
            hidden = h.Storage;
            loss = scope.Keep(Op.Sum(h));
        }
        Assert.False(hidden.IsReleased);            // the scope disposed h, the tape still holds it
        Assert.True(tape.SavedTensorCount > 0);
        using (loss) tape.Backward(loss);
        Assert.True(hidden.IsReleased);             // freed during backward, not by the GC
        Assert.Equal(0, tape.SavedTensorCount);
        Assert.NotNull(w.Grad);
    }

    [Fact]
    public void Errors_name_the_problem()
    {
        using var w = new Parameter(Rand.Tensor(5, new Shape(2, 3)), "w");
        using var x = Rand.Tensor(6, new Shape(2, 3));
        using var tape = new GradTape([w]);
        using var y = Op.Mul(w.Value, x);
        Assert.Contains("one element", Assert.Throws<OpArgumentException>(() => tape.Backward(y)).Message, StringComparison.Ordinal);
        using var g = Tensor.Zeros(new Shape(3, 2));
        Assert.Contains("does not match", Assert.Throws<OpArgumentException>(() => tape.Backward(y, g)).Message, StringComparison.Ordinal);
        Assert.Contains("does not depend", Assert.Throws<OpArgumentException>(() => tape.Backward(x, x)).Message, StringComparison.Ordinal);
        using var s = Op.Sum(y);
        tape.Backward(s);
        Assert.Contains("already run backward", Assert.Throws<InvalidOperationException>(() => tape.Backward(s)).Message, StringComparison.Ordinal);
        using var ints = new Parameter(Tensor.FromArray(new long[] { 1, 2 }, 2), "ints");
        using var tape2 = new GradTape();
        Assert.Contains("floating", Assert.Throws<OpArgumentException>(() => tape2.Watch(ints)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_op_records_one_node_not_its_internal_operand_preparation()
    {
        using var w = new Parameter(Rand.Tensor(8, new Shape(4, 3, 3, 3)), "w");
        using var b = new Parameter(Rand.Tensor(9, new Shape(4)), "b");
        using var x = Rand.Tensor(10, new Shape(1, 3, 5, 5));
        using var xl = Op.Contiguous(x, MemoryFormat.ChannelsLast);
        using var tape = new GradTape([w, b]);
        using var y = Op.Conv2d(xl, w.Value, Conv2dParams.Square(1, 1), new Epilogue(b.Value, null, UnaryKind.Relu));
        Assert.Equal(1, tape.NodeCount);
        using var m = Op.MatMul(w.Value.Reshape(4, -1), w.Value.Reshape(4, -1), transposeB: true);
        Assert.Equal(4, tape.NodeCount);   // two reshapes and the product
    }

    [Fact]
    public void Non_differentiable_ops_do_not_record()
    {
        using var w = new Parameter(Rand.Tensor(7, new Shape(3, 5)), "w");
        using var tape = new GradTape([w]);
        using var am = Op.ArgMax(w.Value, 1);
        using var gt = Op.Binary(BinaryOp.Gt, w.Value, 0.0);
        Assert.False(tape.RequiresGrad(am));
        Assert.False(tape.RequiresGrad(gt));
        Assert.Equal(0, tape.NodeCount);
    }
}

/// <summary>Process-wide live-allocation counter back to its baseline after a forward and backward (runs alone).</summary>
[Collection(MemoryCountersCollection.MemoryCounters)]
public class TapeMemoryTests
{
    [Fact]
    public void Live_storage_returns_to_baseline_after_backward_and_zero_grad()
    {
        var mem = BackendRegistry.Cpu.Memory;
        using var w1 = new Parameter(Rand.Tensor(1, new Shape(8, 3, 3, 3)), "w1");
        using var w2 = new Parameter(Rand.Tensor(2, new Shape(4, 8, 3, 3)), "w2");
        using var b = new Parameter(Rand.Tensor(3, new Shape(4)), "b");
        using var x = Rand.Tensor(4, new Shape(2, 3, 9, 9));
        long baseline = mem.LiveAllocations, baseBytes = mem.LiveBytes;
        for (int step = 0; step < 2; step++)
        {
            using (var tape = new GradTape([w1, w2, b]))
            {
                using var scope = new TensorScope();
                var h = Op.Conv2d(x, w1.Value, Conv2dParams.Square(1, 1), new Epilogue(null, null, UnaryKind.Relu));
                var p = Op.MaxPool2d(h, Pool2dParams.Square(3, 2, 1, ceilMode: true));
                var u = Op.Resize(p, 9, 9, ResizeMode.Nearest);
                var y = Op.Conv2d(u, w2.Value, Conv2dParams.Square(2, 1), new Epilogue(b.Value, null, UnaryKind.Silu));
                var flat = y.Reshape(2, 4, -1).Permute(0, 2, 1);
                var loss = Op.Mean(Op.Mul(flat, flat));
                tape.Backward(loss);
            }
            Assert.Equal(baseline + 3, mem.LiveAllocations);      // the three gradients
            foreach (var p in new[] { w1, w2, b }) p.ZeroGrad();
            Assert.Equal(baseline, mem.LiveAllocations);
            Assert.Equal(baseBytes, mem.LiveBytes);
        }
    }
}
