namespace Osprey.Detection.Evaluation;

/// <summary>COCOeval's default bbox parameters, computed exactly as its numpy code does (linspace = i * step + start,
/// last value = stop), so thresholds compare bit-for-bit with the COCO API's.</summary>
public static class CocoEvalParams
{
    /// <summary>IoU thresholds .50:.05:.95 (T = 10).</summary>
    public static ReadOnlySpan<double> IouThresholds => IouThrs;

    /// <summary>Recall points 0:.01:1 (R = 101).</summary>
    public static ReadOnlySpan<double> RecallThresholds => RecThrs;

    /// <summary>Detections per image considered: 1, 10, 100 (M = 3).</summary>
    public static ReadOnlySpan<int> MaxDetections => [1, 10, 100];

    /// <summary>Area ranges all, small, medium, large (A = 4); both ends inclusive, as in COCOeval.</summary>
    public static ReadOnlySpan<double> AreaRangeLow => [0.0, 0.0, 32.0 * 32.0, 96.0 * 96.0];
    public static ReadOnlySpan<double> AreaRangeHigh => [1e10, 32.0 * 32.0, 96.0 * 96.0, 1e10];

    public static IReadOnlyList<string> AreaLabels { get; } = ["all", "small", "medium", "large"];

    public const int T = 10, R = 101, A = 4, M = 3;

    private static readonly double[] IouThrs = Linspace(0.5, 0.95, T);
    private static readonly double[] RecThrs = Linspace(0.0, 1.0, R);

    private static double[] Linspace(double start, double stop, int num)
    {
        var y = new double[num];
        double step = (stop - start) / (num - 1);
        for (int i = 0; i < num; i++) y[i] = i * step + start;
        y[num - 1] = stop;
        return y;
    }
}
