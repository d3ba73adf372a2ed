namespace Osprey.Tests.Support;

/// <summary>
/// The deterministic values of tools/formula.py, bit for bit: element i of key k is the top 24 bits of
/// splitmix64(fnv1a64(k) + (i + 1) * golden) mapped to [-1, 1). Fixtures store results, not these inputs.
/// </summary>
public static class Formula
{
    public static ulong Fnv1a64(string key)
    {
        ulong h = 0xCBF29CE484222325;
        foreach (byte b in System.Text.Encoding.UTF8.GetBytes(key)) { h ^= b; h *= 0x100000001B3; }
        return h;
    }

    public static float[] Values(string key, long n)
    {
        ulong seed = Fnv1a64(key);
        var v = new float[n];
        for (long i = 0; i < n; i++)
        {
            ulong z = seed + (ulong)(i + 1) * 0x9E3779B97F4A7C15;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
            z ^= z >> 31;
            v[i] = (float)((z >> 40) / (double)(1 << 23) - 1.0);
        }
        return v;
    }
}
