using Osprey.Detection.Boxes;
using Xunit;

namespace Osprey.Tests.Support;

/// <summary>Two detection lists that should be the same run (engine vs eager detector): non-empty, same count, and per
/// detection the same label, score within 1e-5 and corners within 1e-3 px.</summary>
internal static class SameDetections
{
    public static void Assert(IReadOnlyList<DetectedObject> want, IReadOnlyList<DetectedObject> got)
    {
        Xunit.Assert.NotEmpty(want);
        Xunit.Assert.Equal(want.Count, got.Count);
        for (int j = 0; j < want.Count; j++)
        {
            Xunit.Assert.Equal(want[j].Label, got[j].Label);
            Xunit.Assert.Equal(want[j].Score, got[j].Score, 1e-5f);
            Xunit.Assert.Equal(want[j].X1, got[j].X1, 1e-3f);
            Xunit.Assert.Equal(want[j].Y1, got[j].Y1, 1e-3f);
            Xunit.Assert.Equal(want[j].X2, got[j].X2, 1e-3f);
            Xunit.Assert.Equal(want[j].Y2, got[j].Y2, 1e-3f);
        }
    }
}
