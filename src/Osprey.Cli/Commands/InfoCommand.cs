using System.CommandLine;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Osprey.Core.Backends;
using Osprey.Cuda;
using Spectre.Console;

namespace Osprey.Cli.Commands;

/// <summary>`osprey info`: the machine, the CPU features Osprey uses, and the backends it can run on.</summary>
public static class InfoCommand
{
    public static Command Create()
    {
        var cmd = new Command("info", "Show CPU features, backends and GPU libraries found");
        cmd.SetAction(_ => Run());
        return cmd;
    }

    private static int Run()
    {
        var table = new Table().AddColumns("item", "value").Border(TableBorder.Rounded);
        table.AddRow("osprey", Markup.Escape(typeof(InfoCommand).Assembly.GetName().Version?.ToString(3) ?? "?"));
        table.AddRow(".NET", Markup.Escape(RuntimeInformation.FrameworkDescription));
        table.AddRow("OS", Markup.Escape(RuntimeInformation.OSDescription));
        table.AddRow("CPU threads", Environment.ProcessorCount.ToString(System.Globalization.CultureInfo.InvariantCulture));
        table.AddRow("CPU features", Markup.Escape(CpuFeatures()));
        table.AddRow("backend cpu", Markup.Escape(BackendRegistry.Cpu.Name));
        AddCuda(table);
        AnsiConsole.Write(table);
        return 0;
    }

    private static void AddCuda(Table table)
    {
        var cuda = CudaSystemInfo.Collect();
        table.AddRow("NVIDIA driver", Markup.Escape(cuda.KernelDriver ?? "not found (/proc/driver/nvidia/version)"));
        table.AddRow("CUDA (driver API)", Markup.Escape(cuda.DriverApi ?? "-"));
        if (cuda.Problem is not null) table.AddRow("backend cuda", Markup.Escape($"unavailable: {cuda.Problem}"));
        foreach (var d in cuda.Devices)
            table.AddRow($"backend cuda:{d.Index}", Markup.Escape(
                $"{d.Name}, compute capability {d.Major}.{d.Minor} ({d.Architecture}), {d.TotalMemory / (1024.0 * 1024 * 1024):F1} GiB, " +
                $"{d.Multiprocessors} SMs, L2 {d.L2CacheBytes / (1024 * 1024)} MiB"));
        foreach (var lib in cuda.Libraries)
        {
            string text = lib.Found
                ? $"{lib.Version ?? "found"} at {lib.Path}"
                : $"not found; tried {lib.Tried.Count} paths: {string.Join("; ", lib.Tried.Take(6))}{(lib.Tried.Count > 6 ? "; ..." : "")}";
            table.AddRow($"lib {lib.Name}", Markup.Escape(text));
        }
    }

    private static string CpuFeatures()
    {
        var f = new List<string>();
        if (Sse42.IsSupported) f.Add("SSE4.2");
        if (Avx2.IsSupported) f.Add("AVX2");
        if (Fma.IsSupported) f.Add("FMA");
        if (Avx512F.IsSupported) f.Add("AVX-512F");
        if (Avx512BW.IsSupported) f.Add("AVX-512BW");
        if (System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported) f.Add("NEON");
        return f.Count == 0 ? "none (scalar fallbacks)" : string.Join(" ", f);
    }
}
