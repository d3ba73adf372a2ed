// Shared by every Osprey kernel source: KernelCache prepends it, so sources need no system headers.
// Element types: float, half_t, bf16_t (16-bit floats held as bits), signed char, unsigned char, int, i64, bool.
// Arithmetic on 16-bit floats is done in float32 and rounded once (as PyTorch does).
typedef long long i64;
typedef unsigned long long u64;
#define MAX_RANK 8
#define MAX_OPERANDS 4

struct half_t { unsigned short x; };
struct bf16_t { unsigned short x; };

__device__ __forceinline__ float h2f(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ unsigned short f2h(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
__device__ __forceinline__ float b2f(unsigned short b) { return __uint_as_float(((unsigned)b) << 16); }
__device__ __forceinline__ unsigned short f2b(float f)
{
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u); // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);                                                  // round to nearest even
    return (unsigned short)(u >> 16);
}
__device__ __forceinline__ float qnan() { return __int_as_float(0x7fc00000); }
__device__ __forceinline__ bool is_nan(float v) { return v != v; }

// Num<T>: the type T computes in (C), and conversions to and from it.
template <typename T> struct Num;
template <> struct Num<float>         { typedef float C; static const bool F = true;  __device__ static float to(float v) { return v; } __device__ static float from(float v) { return v; } };
template <> struct Num<half_t>        { typedef float C; static const bool F = true;  __device__ static float to(half_t v) { return h2f(v.x); } __device__ static half_t from(float v) { half_t r; r.x = f2h(v); return r; } };
template <> struct Num<bf16_t>        { typedef float C; static const bool F = true;  __device__ static float to(bf16_t v) { return b2f(v.x); } __device__ static bf16_t from(float v) { bf16_t r; r.x = f2b(v); return r; } };
template <> struct Num<signed char>   { typedef int C;   static const bool F = false; __device__ static int to(signed char v) { return v; } __device__ static signed char from(int v) { return (signed char)v; } };
template <> struct Num<unsigned char> { typedef int C;   static const bool F = false; __device__ static int to(unsigned char v) { return v; } __device__ static unsigned char from(int v) { return (unsigned char)v; } };
template <> struct Num<int>           { typedef int C;   static const bool F = false; __device__ static int to(int v) { return v; } __device__ static int from(int v) { return v; } };
template <> struct Num<i64>           { typedef i64 C;   static const bool F = false; __device__ static i64 to(i64 v) { return v; } __device__ static i64 from(i64 v) { return v; } };
template <> struct Num<bool>          { typedef int C;   static const bool F = false; __device__ static int to(bool v) { return v ? 1 : 0; } __device__ static bool from(int v) { return v != 0; } };

// A strided walk over up to MAX_OPERANDS same-shaped operands (shape and strides in elements), laid out
// exactly as Osprey.Cuda.Runtime.KernelLayout on the host.
struct Layout
{
    int rank;
    int small;          // 1 when the walk has fewer than 2^32 elements: index arithmetic in 32 bits

    i64 shape[MAX_RANK];
    i64 stride[MAX_OPERANDS][MAX_RANK];
};

// Element offsets of linear index idx (row-major over the shape) in the first N operands.
template <int N>
__device__ __forceinline__ void offsets(const Layout& L, i64 idx, i64 (&off)[N])
{
#pragma unroll
    for (int j = 0; j < N; j++) off[j] = 0;
    if (L.small)
    {
        unsigned u = (unsigned)idx;
        for (int d = L.rank - 1; d >= 0; d--)
        {
            unsigned s = (unsigned)L.shape[d];
            unsigned c = u % s;
            u /= s;
#pragma unroll
            for (int j = 0; j < N; j++) off[j] += (i64)c * L.stride[j][d];
        }
        return;
    }
    for (int d = L.rank - 1; d >= 0; d--)
    {
        i64 s = L.shape[d];
        i64 c = idx % s;
        idx /= s;
#pragma unroll
        for (int j = 0; j < N; j++) off[j] += c * L.stride[j][d];
    }
}

template <typename A, typename B> struct Same { static const bool value = false; };
template <typename A> struct Same<A, A> { static const bool value = true; };

// 16-byte packs for vectorised contiguous paths.
template <typename T> struct alignas(16) Pack { T v[16 / sizeof(T)]; };

// Eight elements, aligned to their size (at most 16 bytes), for paths whose two sides differ in element size.
// E elements of T loaded or stored as one access of sizeof(T) * E bytes (at most 16).
template <typename T, int E> struct alignas(sizeof(T) * E) Vec { T v[E]; };

__device__ __forceinline__ i64 global_id() { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ i64 grid_size() { return (i64)gridDim.x * blockDim.x; }

__device__ __forceinline__ float warp_sum(float v) { for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o); return v; }
__device__ __forceinline__ float warp_max(float v) { for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o)); return v; }

// Instantiation helpers: FOR_FLOATS(M) expands M(type, suffix) for each floating dtype, FOR_ALL for every dtype.
#define FOR_FLOATS(M) M(float, f32) M(half_t, f16) M(bf16_t, bf16)
#define FOR_INTS(M) M(signed char, i8) M(unsigned char, u8) M(int, i32) M(i64, i64)
#define FOR_NUMERIC(M) FOR_FLOATS(M) FOR_INTS(M)
#define FOR_ALL(M) FOR_NUMERIC(M) M(bool, b8)
