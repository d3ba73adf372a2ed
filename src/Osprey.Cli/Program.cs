using System.CommandLine;
using Osprey.Cli.Commands;

namespace Osprey.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        Osprey.Cuda.CudaBackend.Register();
        var root = new RootCommand("Osprey: GPU object detection for .NET")
        {
            InfoCommand.Create(),
            InferCommand.Create(),
            ExportCommand.Create(),
            BenchCommand.Create(),
            EvalCommand.Create(),
            DoctorCommand.Create(),
            TrainCommand.Create(),
            DemoCommand.Create(),
        };
        return root.Parse(args).Invoke();
    }
}
