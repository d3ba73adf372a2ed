using System.CommandLine;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Osprey.Core.Backends;
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
        AnsiConsole.Write(table);
        return 0;
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
