using Osprey.Core;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda.Memory;
using Osprey.Cuda.Native;

namespace Osprey.Tests.Cuda;

/// <summary>Allocator, leaks, error paths, kernel cache and CUDA graphs.</summary>
[Collection(GpuCollection.Name)]
public sealed class CudaRuntimeTests
{
    [Fact]
    public void Bins_round_up_with_bounded_waste()
    {
        Assert.Equal(0, CachingAllocator.BinSize(0));
        Assert.Equal(512, CachingAllocator.BinSize(1));
        Assert.Equal(1024, CachingAllocator.BinSize(513));
        Assert.Equal(64 << 10, CachingAllocator.BinSize(64 << 10));
        foreach (long b in new long[] { 65537, 100_000, 1 << 20, 3_000_001, 64 << 20, (64 << 20) + 1, 1L << 33 })
        {
            long bin = CachingAllocator.BinSize(b);
            Assert.True(bin >= b && bin <= b * 1.25 + (2 << 20), $"{b} -> {bin}");
            Assert.Equal(bin, CachingAllocator.BinSize(bin));
        }
    }

    [GpuFact]
    public void Thousands_of_iterations_leak_nothing()
    {
        var be = Gpu.Backend;
        using var x = GpuCheck.Make(DType.Float32, [64, 257], 1, device: Gpu.Device);
        be.Synchronize();
        long live = be.Memory.LiveBytes, allocs = be.Memory.LiveAllocations;
        long reservedAfterWarmup = 0;
        for (int i = 0; i < 3000; i++)
        {
            using (new TensorScope())
            {
                var a = Op.Relu(x);
                var b = Op.Add(a, x);
                var s = Op.Sum(b, [1]);
                var (v, idx) = Op.TopK(b, 5, 1);
                var sm = Op.Softmax(b, 1);
                var c = Op.Cast(sm, DType.Float16);
                var t = Op.Contiguous(b.Transpose(0, 1));
            }
            if (i == 10) reservedAfterWarmup = be.Allocator.ReservedBytes;
        }
        be.Synchronize();
        Assert.Equal(live, be.Memory.LiveBytes);
        Assert.Equal(allocs, be.Memory.LiveAllocations);
        Assert.Equal(reservedAfterWarmup, be.Allocator.ReservedBytes); // the cache serves every later iteration
    }

    [GpuFact]
    public void Out_of_memory_states_requested_and_free_bytes_and_suggests_a_smaller_batch()
    {
        var be = Gpu.Backend;
        long live = be.Memory.LiveBytes;
        var e = Assert.Throws<OutOfDeviceMemoryException>(() => Tensor.Empty(new Shape(1 << 30, 1 << 10), DType.Float32, Gpu.Device));
        Assert.Contains("requested 4,398,046,511,104 bytes", e.Message);
        Assert.Contains("free", e.Message);
        Assert.Contains("smaller batch", e.Message);
        Assert.Equal(live, be.Memory.LiveBytes);
        using var ok = Tensor.Full(new Shape(1000), 2.0, DType.Float32, Gpu.Device); // still usable afterwards
        Assert.All(ok.ToArray<float>(), v => Assert.Equal(2f, v));
    }

    [GpuFact]
    public void Kernel_that_fails_to_compile_throws_with_the_nvrtc_log()
    {
        var e = Assert.Throws<KernelCompileException>(() =>
            Gpu.Backend.Kernels.LoadModule("broken_test_kernel", "extern \"C\" __global__ void k(float* p) { p[0] = undefined_name; }"));
        Assert.Contains("broken_test_kernel", e.Message);
        Assert.Contains("undefined_name", e.Log);
        Assert.Contains("error", e.Log);
    }

    [GpuFact]
    public void Every_embedded_kernel_source_compiles()
    {
        var be = Gpu.Backend;
        var modules = Osprey.Cuda.Runtime.KernelCache.EmbeddedModules();
        Assert.Contains("unary", modules);
        foreach (string m in modules) Assert.NotEqual(0, be.Kernels.LoadModule(m, Osprey.Cuda.Runtime.KernelCache.EmbeddedSource(m + ".cu")));
    }

    [GpuFact]
    public void Graph_capture_replays_the_captured_ops_on_new_data()
    {
        var be = Gpu.Backend;
        var data = Support.Rand.Floats(7, 4099, -2, 2);
        using var x = Tensor.FromSpan<float>(data, new Shape(4099), Gpu.Device);
        be.Synchronize();
        Tensor? y = null;
        using (var graph = be.CaptureGraph(() => { using var r = Op.Relu(x); y = Op.Mul(r, x); }))
        {
            using var result = y!;
            graph.Launch();
            var got = result.ToArray<float>();
            for (int i = 0; i < data.Length; i++) Assert.Equal(MathF.Max(data[i], 0) * data[i], got[i]);
            var data2 = Support.Rand.Floats(8, 4099, -2, 2);
            be.Upload(System.Runtime.InteropServices.MemoryMarshal.AsBytes<float>(data2), x.Storage, 0);
            graph.Launch();
            got = result.ToArray<float>();
            for (int i = 0; i < data2.Length; i++) Assert.Equal(MathF.Max(data2[i], 0) * data2[i], got[i]);
        }
    }

    [GpuFact]
    public void Graph_keeps_blocks_allocated_in_capture_after_their_tensors_are_disposed()
    {
        // a temporary made during the capture and disposed after it: the graph still writes it on every replay, so the
        // allocator must not hand its block to later work (a graph-private pool, as PyTorch's)
        var be = Gpu.Backend;
        var data = Support.Rand.Floats(9, 5000, -2, 2);
        using var x = Tensor.FromSpan<float>(data, new Shape(5000), Gpu.Device);
        be.Synchronize();
        Tensor? r = null, y = null;
        using var graph = be.CaptureGraph(() => { r = Op.Relu(x); y = Op.Mul(r, x); });
        using var result = y!;
        long reserved = be.Allocator.ReservedBytes;
        ulong block = (ulong)r!.DataPointer;
        r.Dispose();
        using var later = Tensor.Full(new Shape(5000), 7f, DType.Float32, Gpu.Device);   // same size: would reuse the block
        Assert.NotEqual(block, (ulong)later.DataPointer);
        graph.Launch();
        var got = result.ToArray<float>();
        for (int i = 0; i < data.Length; i++) Assert.Equal(MathF.Max(data[i], 0) * data[i], got[i]);
        Assert.All(later.ToArray<float>(), v => Assert.Equal(7f, v));
        Assert.True(be.Allocator.ReservedBytes >= reserved);
    }

    [GpuFact]
    public void Work_streams_run_concurrently_and_match_the_cpu()
    {
        var be = Gpu.Backend;
        const int Threads = 3;
        var results = new float[Threads][];
        var inputs = new float[Threads][];
        var threads = new Thread[Threads];
        for (int t = 0; t < Threads; t++)
        {
            int ti = t;
            inputs[ti] = Support.Rand.Floats(20 + ti, 1 << 18, -3, 3);
            threads[ti] = new Thread(() =>
            {
                using var ws = be.CreateStream();
                using var scope = be.Use(ws);
                Assert.Equal(ws.Stream.Handle, be.Stream.Handle);
                using var a = Tensor.FromSpan<float>(inputs[ti], new Shape(1 << 18), Gpu.Device);
                Tensor acc = a.Share();
                for (int k = 0; k < 20; k++)
                {
                    using var prev = acc;
                    using var relu = Op.Relu(prev);
                    acc = Op.Add(relu, a);
                }
                using (acc) results[ti] = acc.ToArray<float>();
            });
            threads[ti].Start();
        }
        foreach (var th in threads) th.Join();
        Assert.Equal(be.DefaultStream.Handle, be.Stream.Handle);
        for (int t = 0; t < Threads; t++)
        {
            Assert.NotNull(results[t]);
            for (int i = 0; i < inputs[t].Length; i += 97)
            {
                float v = inputs[t][i];
                for (int k = 0; k < 20; k++) v = MathF.Max(v, 0) + inputs[t][i];
                Assert.Equal(v, results[t][i], 1e-4f);
            }
        }
    }

    [GpuFact]
    public void Device_info_is_sane()
    {
        var info = Gpu.Backend.Info;
        Assert.True(info.Major >= 5);
        Assert.True(info.Multiprocessors > 0);
        Assert.True(info.TotalMemory > 1L << 30);
        Assert.StartsWith("sm_", info.Architecture);
        Assert.Contains(info.Name, Gpu.Backend.Name);
    }

    [GpuFact]
    public void Tensors_on_gpu_and_cpu_do_not_mix()
    {
        using var g = Tensor.Zeros(new Shape(3), DType.Float32, Gpu.Device);
        using var c = Tensor.Zeros(new Shape(3));
        Assert.Throws<OpArgumentException>(() => Op.Add(g, c));
        Assert.Equal(DeviceType.Cuda, BackendRegistry.Get(Gpu.Device).Device.Type);
    }
}
