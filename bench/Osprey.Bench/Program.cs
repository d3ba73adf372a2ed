if (args.Length > 0 && args[0] == "coco-eval") return Osprey.Bench.CocoEvalBench.Run(args[1..]);
Console.WriteLine("benchmarks: coco-eval");
return 0;
