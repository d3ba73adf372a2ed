using Osprey.Engine.Runtime;

namespace Osprey.Tests.Engine;

public class MemoryPlannerTests
{
    [Fact]
    public void Random_lifetimes_never_share_memory_while_both_live()
    {
        var rng = new Random(1234);
        for (int trial = 0; trial < 300; trial++)
        {
            int n = rng.Next(1, 60);
            var items = new (long Size, int First, int Last)[n];
            for (int i = 0; i < n; i++)
            {
                int f = rng.Next(-1, 40);
                items[i] = (rng.Next(0, 3) == 0 ? rng.Next(0, 300) : rng.Next(1, 100_000), f, f + rng.Next(0, 15));
            }
            var (off, total) = MemoryPlanner.Place(items, 256);
            long naive = items.Sum(x => MemoryPlanner.Align(x.Size, 256));
            Assert.True(total <= naive, $"trial {trial}: arena {total} > naive {naive}");
            long peakLive = 0;
            for (int t = -1; t < 60; t++)
                peakLive = Math.Max(peakLive, items.Where(x => x.First <= t && t <= x.Last).Sum(x => MemoryPlanner.Align(x.Size, 256)));
            Assert.True(total >= peakLive, $"trial {trial}: arena {total} below the live lower bound {peakLive}");
            for (int i = 0; i < n; i++)
            {
                Assert.Equal(0, off[i] % 256);
                Assert.True(off[i] + MemoryPlanner.Align(items[i].Size, 256) <= total);
                for (int j = i + 1; j < n; j++)
                {
                    bool timeOverlap = items[i].First <= items[j].Last && items[j].First <= items[i].Last;
                    bool memOverlap = off[i] < off[j] + MemoryPlanner.Align(items[j].Size, 256) && off[j] < off[i] + MemoryPlanner.Align(items[i].Size, 256);
                    Assert.False(timeOverlap && memOverlap, $"trial {trial}: items {i} and {j} overlap in time and memory");
                }
            }
        }
    }

    [Fact]
    public void Graph_plan_keeps_live_buffers_apart_and_inputs_and_outputs_to_the_end()
    {
        var g = SmallNet.Trace();
        Osprey.Engine.EngineBuilder.Optimize(g);
        var plan = MemoryPlanner.Plan(g);
        var b = plan.Buffers;
        for (int i = 0; i < b.Count; i++)
            for (int j = i + 1; j < b.Count; j++)
                Assert.False(b[i].First <= b[j].Last && b[j].First <= b[i].Last
                    && b[i].Offset < b[j].Offset + b[j].Bytes && b[j].Offset < b[i].Offset + b[i].Bytes, $"{b[i].Value} and {b[j].Value}");
        foreach (var o in g.Outputs) Assert.Equal(g.Nodes.Count, plan.For(o).Last);
        foreach (var x in g.Inputs) Assert.Equal(g.Nodes.Count, plan.For(x).Last);
        Assert.True(plan.ArenaBytes < plan.NaiveBytes);
    }
}
