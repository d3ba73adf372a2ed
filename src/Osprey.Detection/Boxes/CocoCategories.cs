namespace Osprey.Detection.Boxes;

/// <summary>The COCO 2017 detection categories.</summary>
public static class CocoCategories
{
    /// <summary>
    /// The 80 category ids in ascending order: what ODTK's class index c (0..79) and NVIDIA SSD's label c (1..80, index
    /// c - 1) stand for when trained on COCO (both number the annotation file's categories in order).
    /// </summary>
    public static IReadOnlyList<int> Ids { get; } =
    [
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38,
        39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74,
        75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
    ];
}
