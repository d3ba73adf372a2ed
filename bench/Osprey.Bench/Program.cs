using System.Globalization;
using Osprey.Bench;

// osprey benchmarks. Usage:
//   dotnet run -c Release --project bench/Osprey.Bench -- cpu [--json FILE] [--runs N] [--no-torch]
// cpu: SGEMM GFLOPS and ResNet-50 forward latency on the CPU backend, side by side with PyTorch
// (bench/cpu/torch_cpu.py, run with /usr/bin/python3 in the same invocation).
if (args.Length == 0 || args[0] != "cpu")
{
    Console.Error.WriteLine("usage: Osprey.Bench cpu [--json FILE] [--runs N] [--no-torch]");
    return 2;
}
var options = new CpuBenchOptions();
for (int i = 1; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--json" when i + 1 < args.Length: options = options with { JsonPath = args[++i] }; break;
        case "--runs" when i + 1 < args.Length: options = options with { Runs = int.Parse(args[++i], CultureInfo.InvariantCulture) }; break;
        case "--no-torch": options = options with { Torch = false }; break;
        default:
            Console.Error.WriteLine($"cpu: unknown or incomplete option '{args[i]}'");
            return 2;
    }
}
return CpuBench.Run(options);
