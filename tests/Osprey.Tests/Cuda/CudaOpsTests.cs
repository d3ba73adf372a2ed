namespace Osprey.Tests.Cuda;

/// <summary>
/// Every CUDA op checked two ways on the same seeded cases (see <see cref="OpCases"/>): against a plain host
/// reference (independent of any backend) and against the CPU backend through Op.*. The CPU-backend checks
/// fail for ops whose CPU kernels have not landed yet; the host-reference checks stand on their own.
/// </summary>
[Collection(GpuCollection.Name)]
public sealed class CudaOpsTests
{
    [GpuFact] public void Data_movement_matches_host_reference() => GpuCheck.All(OpCases.DataMovement(), GpuCheck.VsHost);
    [GpuFact] public void Unary_matches_host_reference() => GpuCheck.All(OpCases.Unary(), GpuCheck.VsHost);
    [GpuFact] public void Binary_and_where_match_host_reference() => GpuCheck.All(OpCases.Binary(), GpuCheck.VsHost);
    [GpuFact] public void Reductions_match_host_reference() => GpuCheck.All(OpCases.Reductions(), GpuCheck.VsHost);
    [GpuFact] public void TopK_matches_host_reference() => GpuCheck.All(OpCases.TopK(), GpuCheck.VsHost);
    [GpuFact] public void Indexing_matches_host_reference() => GpuCheck.All(OpCases.Indexing(), GpuCheck.VsHost);
    [GpuFact] public void Pooling_and_resize_match_host_reference() => GpuCheck.All(OpCases.Image(), GpuCheck.VsHost);

    [GpuFact] public void Data_movement_matches_cpu_backend() => GpuCheck.All(OpCases.DataMovement(), GpuCheck.VsCpu);
    [GpuFact] public void Unary_matches_cpu_backend() => GpuCheck.All(OpCases.Unary(), GpuCheck.VsCpu);
    [GpuFact] public void Binary_and_where_match_cpu_backend() => GpuCheck.All(OpCases.Binary(), GpuCheck.VsCpu);
    [GpuFact] public void Reductions_match_cpu_backend() => GpuCheck.All(OpCases.Reductions(), GpuCheck.VsCpu);
    [GpuFact] public void TopK_matches_cpu_backend() => GpuCheck.All(OpCases.TopK(), GpuCheck.VsCpu);
    [GpuFact] public void Indexing_matches_cpu_backend() => GpuCheck.All(OpCases.Indexing(), GpuCheck.VsCpu);
    [GpuFact] public void Pooling_and_resize_match_cpu_backend() => GpuCheck.All(OpCases.Image(), GpuCheck.VsCpu);
}
