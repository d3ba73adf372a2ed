using System.Globalization;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Cuda.Nccl;
using Osprey.Cuda.Native;
using Osprey.Cuda.Runtime;
using Spectre.Console;

namespace Osprey.Cli.Commands;

/// <summary>`osprey doctor`'s NCCL part: the library (version, path), a one-rank all-reduce on the checked device, and with
/// two or more GPUs an all-reduce over all of them (ncclCommInitAll + a group) in float32, float16 and bfloat16, each
/// compared with the host sum. A missing NCCL is reported, not failed (only `osprey train --devices` needs it).</summary>
internal static class DoctorNccl
{
    public static (int Total, int Failed) Run(int index)
    {
        var (handle, probe) = LibraryResolver.TryLoad(NativeLibraries.Spec(NativeLibraries.Nccl));
        if (handle == 0)
        {
            AnsiConsole.MarkupLine($"[yellow]nccl: not found[/] (needed only for multi-GPU training, `osprey train --devices`); tried {probe.Tried.Count} paths:");
            foreach (var t in probe.Tried.Take(8)) AnsiConsole.MarkupLine($"  {Markup.Escape(t)}");
            return (0, 0);
        }
        NcclApi api;
        try { api = NcclApi.Instance; }
        catch (CudaException e)
        {
            AnsiConsole.MarkupLine($"[red]nccl: FAIL[/] {Markup.Escape(e.Message)}");
            return (1, 1);
        }
        int gpus = CudaDriver.DeviceCount(out _);
        AnsiConsole.MarkupLine($"nccl {api.VersionText} ({Markup.Escape(probe.Path ?? "")}), {gpus} GPU(s)");
        var table = new Table().AddColumns("collective", "ranks", "dtype", "max abs error", "tolerance", "result").Border(TableBorder.Rounded);
        int total = 0, failed = 0;
        var sets = new List<int[]> { new[] { index } };
        if (gpus >= 2) sets.Add(Enumerable.Range(0, gpus).ToArray());
        foreach (var devices in sets)
            foreach (var dtype in new[] { DType.Float32, DType.Float16, DType.BFloat16 })
            {
                total++;
                string err = "-", result;
                double tol = dtype switch { DType.Float32 => 1e-5, DType.Float16 => 2e-3, _ => 1.6e-2 };
                try
                {
                    double worst = AllReduce(devices, dtype);
                    err = worst.ToString("G3", CultureInfo.InvariantCulture);
                    bool ok = worst <= tol;
                    result = ok ? "[green]PASS[/]" : "[red]FAIL[/]";
                    if (!ok) failed++;
                }
                catch (Exception e) when (e is Osprey.Core.OspreyException or ArgumentException or InvalidOperationException)
                {
                    failed++;
                    result = $"[red]FAIL[/] {Markup.Escape(e.Message.Length > 120 ? e.Message[..120] + "..." : e.Message)}";
                }
                table.AddRow("all-reduce sum", string.Join(",", devices), dtype.Name(), err, $"{tol:G2}·|sum|", result);
            }
        AnsiConsole.Write(table);
        return (total, failed);
    }

    /// <summary>All-reduce of seeded values over the devices; the worst |result - host sum| / max(1, |host sum|) over ranks.</summary>
    private static double AllReduce(int[] devices, DType dtype)
    {
        var backends = devices.Select(i => (CudaBackend)BackendRegistry.Get(Device.Cuda(i))).ToArray();
        var comms = devices.Length == 1
            ? [NcclCommunicator.InitRank(backends[0], NcclApi.Instance.NewUniqueId(), 0, 1)]
            : NcclCommunicator.InitAll(backends);
        var x = new Tensor[devices.Length];
        try
        {
            var sum = new double[4097];
            for (int r = 0; r < x.Length; r++)
            {
                var rng = new Random(100 + r);
                var v = new float[sum.Length];
                for (int i = 0; i < v.Length; i++) v[i] = (float)(rng.NextDouble() * 4 - 2);
                using var host = Tensor.FromArray(v, v.Length);
                using var cast = Op.Cast(host, dtype);
                using var back = Op.Cast(cast, DType.Float32);
                var rounded = back.ToArray<float>();
                for (int i = 0; i < sum.Length; i++) sum[i] += rounded[i];
                x[r] = Op.To(cast, Device.Cuda(devices[r]));
            }
            NcclApi.Instance.Group(() => { for (int r = 0; r < x.Length; r++) comms[r].AllReduce(x[r]); });
            double worst = 0;
            for (int r = 0; r < x.Length; r++)
            {
                comms[r].ThrowIfAsyncError();
                using var cpu = Op.To(x[r], Device.Cpu);
                using var f = Op.Cast(cpu, DType.Float32);
                var got = f.ToArray<float>();
                for (int i = 0; i < got.Length; i++) worst = Math.Max(worst, Math.Abs(got[i] - sum[i]) / Math.Max(1, Math.Abs(sum[i])));
            }
            return worst;
        }
        finally
        {
            foreach (var t in x) t?.Dispose();
            foreach (var c in comms) c.Dispose();
        }
    }
}
