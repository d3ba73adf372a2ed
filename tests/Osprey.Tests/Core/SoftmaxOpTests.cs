using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Core;

public class SoftmaxOpTests
{
    public static TheoryData<string> Cases => Golden.Names("softmax");

    /// <summary>softmax and log_softmax on first, middle and last axes, large logits (±30), a 1000-long row, float16.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_torch(string name)
    {
        var c = Golden.Get("softmax", name);
        using var x = c.Input(0);
        using var e = c.Output(0);
        using var y = c.Bool("log") ? Op.LogSoftmax(x, c.Int("axis")) : Op.Softmax(x, c.Int("axis"));
        var (atol, rtol) = Golden.Tolerance(x.DType, 1e-6, 1e-5);
        Golden.AssertMatches(e, y, atol, rtol, name);
    }

    [Fact]
    public void Huge_logits_do_not_overflow()
    {
        using var x = Tensor.FromArray(new[] { 1000f, 1000f, -1000f }, 3);
        using var y = Op.Softmax(x, 0);
        Assert.Equal(new[] { 0.5f, 0.5f, 0f }, y.ToArray<float>());
        using var l = Op.LogSoftmax(x, -1);
        Assert.Equal(-MathF.Log(2), l.ToArray<float>()[0], 6);
    }
}
