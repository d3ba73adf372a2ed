using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Core;

public class PoolOpTests
{
    public static TheoryData<string> Cases => Golden.Names("pool");

    /// <summary>max/avg pooling: padding, ceil_mode (partial and dropped last windows), count_include_pad false, stride > kernel, rectangular kernels; NCHW and NHWC; float32 and float16.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_torch(string name)
    {
        var c = Golden.Get("pool", name);
        using var x0 = c.Input(0);
        bool nhwc = c.Str("format") == "nhwc";
        using var x = nhwc ? Op.Contiguous(x0, MemoryFormat.ChannelsLast) : x0.Share();
        var p = new Pool2dParams(c.Int("kh"), c.Int("kw"), c.Int("sh"), c.Int("sw"), c.Int("ph"), c.Int("pw"), c.Bool("ceil"), c.Bool("includePad"));
        using var y = Op.Pool2d(Enum.Parse<PoolKind>(c.Str("kind")), x, p);
        if (nhwc && !x.IsContiguous()) Assert.True(y.IsContiguous(MemoryFormat.ChannelsLast), "channels_last in, channels_last out");
        using var e = c.Output(0);
        var (atol, rtol) = Golden.Tolerance(x.DType, 1e-6, 1e-5);
        Golden.AssertMatches(e, y, atol, rtol, name);
    }

    [Theory]
    [InlineData(4, 2, 3, 1, true, 2)]   // torch drops the window that would start in the right padding
    [InlineData(8, 3, 2, 0, true, 4)]
    [InlineData(8, 3, 2, 0, false, 3)]
    [InlineData(5, 3, 2, 1, true, 3)]
    [InlineData(1, 1, 2, 0, true, 1)]
    public void Output_size_follows_torch(int size, int k, int s, int p, bool ceil, int expected) =>
        Assert.Equal(expected, Pool2dParams.Square(k, s, p, ceil).OutH(size));

    [Fact]
    public void Channels_last_matches_nchw_on_prime_sizes()
    {
        using var x = Rand.Tensor(3, new Shape(1, 17, 13, 11), -2, 2);
        using var cl = Op.Contiguous(x, MemoryFormat.ChannelsLast);
        var p = Pool2dParams.Square(3, 2, 1, ceilMode: true, countIncludePad: false);
        foreach (var kind in new[] { PoolKind.Max, PoolKind.Avg })
        {
            using var a = Op.Pool2d(kind, x, p);
            using var b = Op.Pool2d(kind, cl, p);
            Close.Assert(a, b, 1e-6, 1e-6, kind.ToString());
        }
    }
}
