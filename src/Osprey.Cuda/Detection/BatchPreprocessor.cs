using System.Runtime.InteropServices;
using Osprey.Core.Tensors;
using Osprey.Cuda.Memory;
using Osprey.Cuda.Native;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda.Detection;

/// <summary>One image of a batch for <see cref="BatchPreprocessor"/> (the struct PreImage of Kernels/preprocess.cu).</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct PreprocessImage(long Offset, int Height, int Width, int ResizedHeight, int ResizedWidth);

/// <summary>
/// Fused GPU pre-processing of a batch (Kernels/preprocess.cu): the caller writes the decoded uint8 RGB (HWC)
/// images one after another into a page-locked staging buffer (<see cref="Stage"/>), then <see cref="Run"/> sends
/// pixels and per-image descriptors to the device in ONE copy and one kernel normalises, resizes (bilinear,
/// align_corners=False) and zero-pads them into the batch tensor, NCHW or NHWC (the output's strides), float32
/// or float16. Buffers grow to the largest batch seen and are reused; the host waits only when it refills the
/// staging buffer while the previous batch's copy is still in flight. The upload runs on the preprocessor's own
/// copy stream (after the previous batch's kernel has read the device buffer), and the kernel on the caller's
/// stream waits for it, so an upload overlaps whatever the caller's stream is still running (the previous batch's
/// network). One instance per thread.
/// </summary>
public sealed unsafe class BatchPreprocessor : IDisposable
{
    private const int DescriptorBytes = 24;
    private readonly CudaBackend _backend;
    private readonly CudaEvent _copied = new(timing: false);
    private readonly CudaEvent _consumed = new(timing: false);
    private readonly CudaStream _copyStream;
    private bool _consumedRecorded;
    private nint _host;
    private long _hostBytes;
    private DeviceBuffer? _device;
    private bool _pending;
    private long _residentBytes;

    public BatchPreprocessor(CudaBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        _backend = backend;
        if (Marshal.SizeOf<PreprocessImage>() != DescriptorBytes) throw new InvalidOperationException("PreprocessImage layout changed");
        _backend.MakeCurrent();
        _copyStream = new CudaStream();
    }

    /// <summary>Page-locked room for <paramref name="pixelBytes"/> bytes of packed pixels (valid until the next call).</summary>
    public Span<byte> Stage(long pixelBytes)
    {
        if (pixelBytes < 0 || pixelBytes > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(pixelBytes), $"preprocess: {pixelBytes} bytes of pixels (at most 2 GiB per batch)");
        _backend.MakeCurrent();
        if (_pending) { _copied.Synchronize(); _pending = false; }
        long need = pixelBytes + 4096L * DescriptorBytes + 256;
        if (need > _hostBytes)
        {
            if (_host != 0) CuDriver.Check(CuDriver.cuMemFreeHost(_host));
            _host = 0;
            long bytes = Math.Max(need, _hostBytes * 3 / 2);
            CuDriver.Check(CuDriver.cuMemHostAlloc(out _host, (nuint)bytes, 0), $"cuMemHostAlloc({bytes} bytes of staging for preprocess)");
            _hostBytes = bytes;
        }
        return new Span<byte>((void*)_host, (int)pixelBytes);
    }

    /// <summary>
    /// Uploads the staged pixels and <paramref name="images"/> and fills <paramref name="output"/> ([N, 3, H, W],
    /// float32 or float16, on this device, NCHW-contiguous or channels-last). Every element of output is written.
    /// </summary>
    public void Run(long pixelBytes, ReadOnlySpan<PreprocessImage> images, Tensor output, ReadOnlySpan<float> mean, ReadOnlySpan<float> std)
    {
        ArgumentNullException.ThrowIfNull(output);
        Validate(pixelBytes, images, output, mean, std);
        _backend.MakeCurrent();
        long descAt = (pixelBytes + 255) / 256 * 256;
        long total = descAt + (long)images.Length * DescriptorBytes;
        if (_host == 0 || total > _hostBytes) throw new InvalidOperationException($"preprocess: Stage({pixelBytes}) must come first (staging holds {_hostBytes} bytes)");
        MemoryMarshal.AsBytes(images).CopyTo(new Span<byte>((void*)(_host + (nint)descAt), images.Length * DescriptorBytes));
        if (_device is null || _device.Bytes < total)
        {
            _device?.Dispose();
            _device = _backend.AllocateWorkspace(Math.Max(total, (_device?.Bytes ?? 0) * 3 / 2));
        }
        // the device buffer is rewritten only after the previous kernel (on the caller's stream) has read it
        if (_consumedRecorded) _copyStream.Wait(_consumed);
        CuDriver.Check(CuDriver.cuMemcpyHtoDAsync(_device.Pointer, (void*)_host, (nuint)total, _copyStream.Handle), "cuMemcpyHtoDAsync(preprocess batch)");
        _copied.Record(_copyStream);
        _pending = true;
        _residentBytes = total;
        _backend.Stream.Wait(_copied);
        LaunchKernel(descAt, images.Length, output, mean, std);
    }

    /// <summary>
    /// Runs the kernel again on the batch the last <see cref="Run"/> left on the device (no copy): for benchmarks that
    /// start from a decoded batch already on the GPU. <paramref name="images"/> must be that call's descriptors.
    /// </summary>
    public void RunResident(long pixelBytes, ReadOnlySpan<PreprocessImage> images, Tensor output, ReadOnlySpan<float> mean, ReadOnlySpan<float> std)
    {
        ArgumentNullException.ThrowIfNull(output);
        Validate(pixelBytes, images, output, mean, std);
        long descAt = (pixelBytes + 255) / 256 * 256;
        if (_device is null || _residentBytes != descAt + (long)images.Length * DescriptorBytes)
            throw new InvalidOperationException("preprocess: no batch of this size is resident on the device (call Run first)");
        _backend.MakeCurrent();
        LaunchKernel(descAt, images.Length, output, mean, std);
    }

    private void LaunchKernel(long descAt, int count, Tensor output, ReadOnlySpan<float> mean, ReadOnlySpan<float> std)
    {
        var p = new Params
        {
            N = count, OH = output.Shape[2], OW = output.Shape[3],
            Sn = output.Strides[0], Sc = output.Strides[1], Sh = output.Strides[2], Sw = output.Strides[3],
            M0 = mean[0], M1 = mean[1], M2 = mean[2], S0 = std[0], S1 = std[1], S2 = std[2],
        };
        long work = (long)p.N * p.OH * p.OW;
        string kernel = output.DType == DType.Float16 ? "preprocess_f16" : "preprocess_f32";
        Launch.Kernel(_backend.Fn("preprocess", kernel), _backend.GridFor(work), 256, 0, _backend.Stream,
            _device!.Pointer, _device.Pointer + (ulong)descAt, (ulong)output.DataPointer, p);
        _consumed.Record(_backend.Stream);
        _consumedRecorded = true;
    }

    private void Validate(long pixelBytes, ReadOnlySpan<PreprocessImage> images, Tensor output, ReadOnlySpan<float> mean, ReadOnlySpan<float> std)
    {
        if (output.Device != _backend.Device) throw new ArgumentException($"preprocess: output is on {output.Device}, this preprocessor on {_backend.Device}");
        if (output.DType is not (DType.Float32 or DType.Float16)) throw new ArgumentException($"preprocess: output must be float32 or float16, got {output.DType}");
        if (output.Rank != 4 || output.Shape[1] != 3 || output.Shape[0] != images.Length)
            throw new ArgumentException($"preprocess: output must be [{images.Length}, 3, H, W], got {output.Shape}");
        if (!output.IsContiguous() && !output.IsContiguous(MemoryFormat.ChannelsLast))
            throw new ArgumentException("preprocess: output must be NCHW-contiguous or channels-last");
        if (mean.Length != 3 || std.Length != 3) throw new ArgumentException("preprocess: 3 means and 3 standard deviations");
        if (images.Length > 4096) throw new ArgumentException($"preprocess: {images.Length} images in one batch (at most 4096)");
        for (int i = 0; i < images.Length; i++)
        {
            var im = images[i];
            long bytes = (long)im.Height * im.Width * 3;
            if (im.Height <= 0 || im.Width <= 0 || im.Offset < 0 || im.Offset + bytes > pixelBytes)
                throw new ArgumentException($"preprocess: image {i} ({im.Width}x{im.Height} at byte {im.Offset}) lies outside the {pixelBytes} staged bytes");
            if (im.ResizedHeight <= 0 || im.ResizedWidth <= 0 || im.ResizedHeight > output.Shape[2] || im.ResizedWidth > output.Shape[3])
                throw new ArgumentException($"preprocess: image {i} resized to {im.ResizedWidth}x{im.ResizedHeight} does not fit the output {output.Shape}");
        }
    }

    public void Dispose()
    {
        if (_pending) _copied.Synchronize();
        _pending = false;
        if (_consumedRecorded) _consumed.Synchronize();
        _consumedRecorded = false;
        _copyStream.Dispose();
        _copied.Dispose();
        _consumed.Dispose();
        _device?.Dispose();
        _device = null;
        if (_host != 0) CuDriver.cuMemFreeHost(_host);
        _host = 0;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Params
    {
        public int N, OH, OW, Pad;
        public long Sn, Sc, Sh, Sw;
        public float M0, M1, M2, S0, S1, S2;
    }
}
