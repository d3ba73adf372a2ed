// Benchmark programs: `Osprey.Bench <mode> [options]`. One line per mode.
return args.FirstOrDefault() switch
{
    "gpu-core" => Osprey.Bench.GpuCoreBench.Run(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Osprey.Bench <mode> [options]; modes: gpu-core");
    return 2;
}
