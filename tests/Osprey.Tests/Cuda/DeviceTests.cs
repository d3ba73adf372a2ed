using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Cuda.Native;

namespace Osprey.Tests.Cuda;

[Collection(GpuCollection.Name)]
public sealed class DeviceTests
{
    [Fact]
    public void Resolver_failure_lists_every_path_tried()
    {
        var spec = new LibrarySpec("osprey-test-missing", ["libosprey-does-not-exist.so.1"], ["cu13"]);
        var e = Assert.Throws<CudaLibraryNotFoundException>(() => LibraryResolver.Load(spec));
        Assert.Contains("libosprey-does-not-exist.so.1 via the system loader", e.Message);
        Assert.Contains("/usr/lib/x86_64-linux-gnu/libosprey-does-not-exist.so.1", e.Message);
        Assert.Contains("OSPREY_CUDA_PATH", e.Message);
    }

    [Fact]
    public void Registered_provider_reports_no_device_clearly_or_opens_one()
    {
        CudaBackend.Register();
        Assert.True(BackendRegistry.HasProvider(DeviceType.Cuda));
        if (Gpu.SkipReason is not null)
        {
            var e = Assert.ThrowsAny<Osprey.Core.OspreyException>(() => BackendRegistry.Get(Device.Cuda(0)));
            Assert.False(string.IsNullOrWhiteSpace(e.Message));
        }
    }

    [GpuFact]
    public void Bad_device_index_names_the_index_and_the_count()
    {
        var e = Assert.Throws<CudaException>(() => new CudaBackend(97));
        Assert.Contains("cuda:97", e.Message);
        Assert.Contains("CUDA device", e.Message);
    }

    [GpuFact]
    public void Upload_download_round_trip()
    {
        var data = Support.Rand.Floats(3, 1_000_003);
        using var t = Tensor.FromSpan<float>(data, new Shape(data.Length), Gpu.Device);
        Assert.Equal(data, t.ToArray<float>());
    }
}
