using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Core;

public class ResizeOpTests
{
    public static TheoryData<string> Cases => Golden.Names("resize");

    /// <summary>interpolate(size=...) nearest and bilinear (align_corners=False): up, down, identity, exact 2x, odd sizes, 1x1 input; NCHW and NHWC; bfloat16.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_torch(string name)
    {
        var c = Golden.Get("resize", name);
        using var x0 = c.Input(0);
        bool nhwc = c.Str("format") == "nhwc";
        using var x = nhwc ? Op.Contiguous(x0, MemoryFormat.ChannelsLast) : x0.Share();
        using var y = Op.Resize(x, c.Int("h"), c.Int("w"), Enum.Parse<ResizeMode>(c.Str("mode")));
        if (nhwc && !x.IsContiguous()) Assert.True(y.IsContiguous(MemoryFormat.ChannelsLast), "channels_last in, channels_last out");
        using var e = c.Output(0);
        var (atol, rtol) = Golden.Tolerance(x.DType, 1e-6, 1e-5);
        Golden.AssertMatches(e, y, atol, rtol, name);
    }

    [Fact]
    public void Nearest_copies_infinities_without_making_nan()
    {
        using var x = Tensor.FromArray(new[] { float.PositiveInfinity, 1f, 2f, float.NegativeInfinity }, 1, 1, 2, 2);
        using var y = Op.Resize(x, 3, 3, ResizeMode.Nearest);
        Assert.DoesNotContain(y.ToArray<float>(), float.IsNaN);
    }
}
