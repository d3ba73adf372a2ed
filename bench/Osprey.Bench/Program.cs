if (args is ["gpu-libs", ..]) return Osprey.Bench.GpuLibsBench.Run(args[1..]);
Console.WriteLine("see osprey bench");
return 0;
