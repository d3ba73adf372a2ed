using System.Runtime.CompilerServices;
using Osprey.Cuda.Native;

namespace Osprey.Cuda.Runtime;

/// <summary>A launch grid or block size.</summary>
public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    public static implicit operator Dim3(uint x) => new(x);
    public static implicit operator Dim3(int x) => new(checked((uint)x));
}

/// <summary>
/// Kernel launches with typed, blittable arguments and no allocation: each argument is taken by value
/// and its address handed to cuLaunchKernel. The launch status is checked.
/// </summary>
public static unsafe class Launch
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Go(nint function, Dim3 grid, Dim3 block, uint sharedBytes, CudaStream stream, void** args)
    {
        if (grid.X == 0 || grid.Y == 0 || grid.Z == 0) return;
        CudaCounters.CountLaunch();
        CuDriver.Check(CuDriver.cuLaunchKernel(function, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, sharedBytes, stream.Handle, args, null));
    }

    public static void Kernel<T0>(nint function, Dim3 grid, Dim3 block, uint sharedBytes, CudaStream stream, T0 a0) where T0 : unmanaged
    {
        void** p = stackalloc void*[1];
        p[0] = &a0;
        Go(function, grid, block, sharedBytes, stream, p);
    }

    public static void Kernel<T0, T1>(nint function, Dim3 grid, Dim3 block, uint sharedBytes, CudaStream stream, T0 a0, T1 a1) where T0 : unmanaged where T1 : unmanaged
    {
        void** p = stackalloc void*[2];
        p[0] = &a0; p[1] = &a1;
        Go(function, grid, block, sharedBytes, stream, p);
    }

    public static void Kernel<T0, T1, T2>(nint function, Dim3 grid, Dim3 block, uint sharedBytes, CudaStream stream, T0 a0, T1 a1, T2 a2) where T0 : unmanaged where T1 : unmanaged where T2 : unmanaged
    {
        void** p = stackalloc void*[3];
        p[0] = &a0; p[1] = &a1; p[2] = &a2;
        Go(function, grid, block, sharedBytes, stream, p);
    }

    public static void Kernel<T0, T1, T2, T3>(nint function, Dim3 grid, Dim3 block, uint sharedBytes, CudaStream stream, T0 a0, T1 a1, T2 a2, T3 a3) where T0 : unmanaged where T1 : unmanaged where T2 : unmanaged where T3 : unmanaged
    {
        void** p = stackalloc void*[4];
        p[0] = &a0; p[1] = &a1; p[2] = &a2; p[3] = &a3;
        Go(function, grid, block, sharedBytes, stream, p);
    }

    public static void Kernel<T0, T1, T2, T3, T4>(nint function, Dim3 grid, Dim3 block, uint sharedBytes, CudaStream stream, T0 a0, T1 a1, T2 a2, T3 a3, T4 a4) where T0 : unmanaged where T1 : unmanaged where T2 : unmanaged where T3 : unmanaged where T4 : unmanaged
    {
        void** p = stackalloc void*[5];
        p[0] = &a0; p[1] = &a1; p[2] = &a2; p[3] = &a3; p[4] = &a4;
        Go(function, grid, block, sharedBytes, stream, p);
    }

    public static void Kernel<T0, T1, T2, T3, T4, T5>(nint function, Dim3 grid, Dim3 block, uint sharedBytes, CudaStream stream, T0 a0, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5) where T0 : unmanaged where T1 : unmanaged where T2 : unmanaged where T3 : unmanaged where T4 : unmanaged where T5 : unmanaged
    {
        void** p = stackalloc void*[6];
        p[0] = &a0; p[1] = &a1; p[2] = &a2; p[3] = &a3; p[4] = &a4; p[5] = &a5;
        Go(function, grid, block, sharedBytes, stream, p);
    }

    public static void Kernel<T0, T1, T2, T3, T4, T5, T6>(nint function, Dim3 grid, Dim3 block, uint sharedBytes, CudaStream stream, T0 a0, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5, T6 a6) where T0 : unmanaged where T1 : unmanaged where T2 : unmanaged where T3 : unmanaged where T4 : unmanaged where T5 : unmanaged where T6 : unmanaged
    {
        void** p = stackalloc void*[7];
        p[0] = &a0; p[1] = &a1; p[2] = &a2; p[3] = &a3; p[4] = &a4; p[5] = &a5; p[6] = &a6;
        Go(function, grid, block, sharedBytes, stream, p);
    }

    public static void Kernel<T0, T1, T2, T3, T4, T5, T6, T7>(nint function, Dim3 grid, Dim3 block, uint sharedBytes, CudaStream stream, T0 a0, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5, T6 a6, T7 a7) where T0 : unmanaged where T1 : unmanaged where T2 : unmanaged where T3 : unmanaged where T4 : unmanaged where T5 : unmanaged where T6 : unmanaged where T7 : unmanaged
    {
        void** p = stackalloc void*[8];
        p[0] = &a0; p[1] = &a1; p[2] = &a2; p[3] = &a3; p[4] = &a4; p[5] = &a5; p[6] = &a6; p[7] = &a7;
        Go(function, grid, block, sharedBytes, stream, p);
    }

    public static void Kernel<T0, T1, T2, T3, T4, T5, T6, T7, T8>(nint function, Dim3 grid, Dim3 block, uint sharedBytes, CudaStream stream, T0 a0, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5, T6 a6, T7 a7, T8 a8) where T0 : unmanaged where T1 : unmanaged where T2 : unmanaged where T3 : unmanaged where T4 : unmanaged where T5 : unmanaged where T6 : unmanaged where T7 : unmanaged where T8 : unmanaged
    {
        void** p = stackalloc void*[9];
        p[0] = &a0; p[1] = &a1; p[2] = &a2; p[3] = &a3; p[4] = &a4; p[5] = &a5; p[6] = &a6; p[7] = &a7; p[8] = &a8;
        Go(function, grid, block, sharedBytes, stream, p);
    }

    public static void Kernel<T0, T1, T2, T3, T4, T5, T6, T7, T8, T9>(nint function, Dim3 grid, Dim3 block, uint sharedBytes, CudaStream stream, T0 a0, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5, T6 a6, T7 a7, T8 a8, T9 a9) where T0 : unmanaged where T1 : unmanaged where T2 : unmanaged where T3 : unmanaged where T4 : unmanaged where T5 : unmanaged where T6 : unmanaged where T7 : unmanaged where T8 : unmanaged where T9 : unmanaged
    {
        void** p = stackalloc void*[10];
        p[0] = &a0; p[1] = &a1; p[2] = &a2; p[3] = &a3; p[4] = &a4; p[5] = &a5; p[6] = &a6; p[7] = &a7; p[8] = &a8; p[9] = &a9;
        Go(function, grid, block, sharedBytes, stream, p);
    }

    public static void Kernel<T0, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10>(nint function, Dim3 grid, Dim3 block, uint sharedBytes, CudaStream stream, T0 a0, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5, T6 a6, T7 a7, T8 a8, T9 a9, T10 a10) where T0 : unmanaged where T1 : unmanaged where T2 : unmanaged where T3 : unmanaged where T4 : unmanaged where T5 : unmanaged where T6 : unmanaged where T7 : unmanaged where T8 : unmanaged where T9 : unmanaged where T10 : unmanaged
    {
        void** p = stackalloc void*[11];
        p[0] = &a0; p[1] = &a1; p[2] = &a2; p[3] = &a3; p[4] = &a4; p[5] = &a5; p[6] = &a6; p[7] = &a7; p[8] = &a8; p[9] = &a9; p[10] = &a10;
        Go(function, grid, block, sharedBytes, stream, p);
    }

    public static void Kernel<T0, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11>(nint function, Dim3 grid, Dim3 block, uint sharedBytes, CudaStream stream, T0 a0, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5, T6 a6, T7 a7, T8 a8, T9 a9, T10 a10, T11 a11) where T0 : unmanaged where T1 : unmanaged where T2 : unmanaged where T3 : unmanaged where T4 : unmanaged where T5 : unmanaged where T6 : unmanaged where T7 : unmanaged where T8 : unmanaged where T9 : unmanaged where T10 : unmanaged where T11 : unmanaged
    {
        void** p = stackalloc void*[12];
        p[0] = &a0; p[1] = &a1; p[2] = &a2; p[3] = &a3; p[4] = &a4; p[5] = &a5; p[6] = &a6; p[7] = &a7; p[8] = &a8; p[9] = &a9; p[10] = &a10; p[11] = &a11;
        Go(function, grid, block, sharedBytes, stream, p);
    }

}
