// Top-k along an axis with a bitonic sort of 64-bit keys in shared memory: the high 32 bits are the
// value mapped to an unsigned order (inverted for smallest-first), the low 32 bits ~index, so a
// descending sort puts larger values first and, among equal values, the lower index first.
// Rows longer than one block's capacity go in passes: each chunk keeps its best k keys, then the
// kept keys are sorted again until one chunk remains.

__device__ __forceinline__ unsigned ord_f(float v)
{
    unsigned u = __float_as_uint(v);
    if (v != v) u = 0x7fc00000u;                  // every NaN sorts as the largest, as PyTorch
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float unord_f(unsigned o) { return __uint_as_float((o & 0x80000000u) ? (o & 0x7fffffffu) : ~o); }

template <typename T> struct Ord { __device__ static unsigned to(T v) { return ord_f(Num<T>::to(v)); } __device__ static T from(unsigned o) { return Num<T>::from(unord_f(o)); } };
template <> struct Ord<int> { __device__ static unsigned to(int v) { return (unsigned)v ^ 0x80000000u; } __device__ static int from(unsigned o) { return (int)(o ^ 0x80000000u); } };
template <> struct Ord<signed char> { __device__ static unsigned to(signed char v) { return (unsigned)(int)v ^ 0x80000000u; } __device__ static signed char from(unsigned o) { return (signed char)(int)(o ^ 0x80000000u); } };
template <> struct Ord<unsigned char> { __device__ static unsigned to(unsigned char v) { return v; } __device__ static unsigned char from(unsigned o) { return (unsigned char)o; } };

// Sorts n (a power of two) keys descending in shared memory with the whole block.
__device__ void bitonic_desc(u64* keys, int n)
{
    for (int k = 2; k <= n; k <<= 1)
        for (int j = k >> 1; j > 0; j >>= 1)
        {
            for (int i = threadIdx.x; i < n; i += blockDim.x)
            {
                int p = i ^ j;
                if (p > i)
                {
                    u64 a = keys[i], b = keys[p];
                    bool desc = (i & k) == 0;
                    if (desc ? a < b : a > b) { keys[i] = b; keys[p] = a; }
                }
            }
            __syncthreads();
        }
}

// Pass over x: block (row, chunk) loads `chunk` elements of row `row` (row = outer * inner + i, elements
// inner apart), sorts them, and writes its best `keep` keys to keysOut[(row * chunks + chunk) * keep], or,
// when there is one chunk, the final values and indices.
template <typename T>
__device__ void topk_x(const T* __restrict__ x, u64* __restrict__ keysOut, T* __restrict__ values, i64* __restrict__ indices,
    i64 size, i64 inner, int n, int keep, int k, int smallest)
{
    extern __shared__ u64 keys[];
    i64 row = blockIdx.x;
    int chunk = blockIdx.y, chunks = gridDim.y;
    i64 o = row / inner, in = row % inner;
    const T* xr = x + o * size * inner + in;
    i64 start = (i64)chunk * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
    {
        i64 e = start + i;
        u64 key = 0;
        if (e < size)
        {
            unsigned ov = Ord<T>::to(xr[e * inner]);
            if (smallest) ov = ~ov;
            key = ((u64)ov << 32) | (u64)(0xffffffffu - (unsigned)e);
        }
        keys[i] = key;
    }
    __syncthreads();
    bitonic_desc(keys, n);
    if (chunks == 1)
    {
        T* vr = values + o * k * inner + in;
        i64* ir = indices + o * k * inner + in;
        for (int i = threadIdx.x; i < k; i += blockDim.x)
        {
            unsigned ov = (unsigned)(keys[i] >> 32);
            if (smallest) ov = ~ov;
            vr[(i64)i * inner] = Ord<T>::from(ov);
            ir[(i64)i * inner] = (i64)(0xffffffffu - (unsigned)(keys[i] & 0xffffffffu));
        }
    }
    else
        for (int i = threadIdx.x; i < keep; i += blockDim.x) keysOut[(row * chunks + chunk) * keep + i] = keys[i];
}

// Later passes over kept keys: `count` keys per row (zero keys are padding and sort last).
template <typename T>
__device__ void topk_keys(const u64* __restrict__ keysIn, u64* __restrict__ keysOut, T* __restrict__ values, i64* __restrict__ indices,
    i64 count, i64 inner, int n, int keep, int k, int smallest)
{
    extern __shared__ u64 keys[];
    i64 row = blockIdx.x;
    int chunk = blockIdx.y, chunks = gridDim.y;
    i64 start = (i64)chunk * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        keys[i] = start + i < count ? keysIn[row * count + start + i] : 0;
    __syncthreads();
    bitonic_desc(keys, n);
    if (chunks == 1)
    {
        i64 o = row / inner, in = row % inner;
        T* vr = values + o * k * inner + in;
        i64* ir = indices + o * k * inner + in;
        for (int i = threadIdx.x; i < k; i += blockDim.x)
        {
            unsigned ov = (unsigned)(keys[i] >> 32);
            if (smallest) ov = ~ov;
            vr[(i64)i * inner] = Ord<T>::from(ov);
            ir[(i64)i * inner] = (i64)(0xffffffffu - (unsigned)(keys[i] & 0xffffffffu));
        }
    }
    else
        for (int i = threadIdx.x; i < keep; i += blockDim.x) keysOut[(row * chunks + chunk) * keep + i] = keys[i];
}

#define TOPK(T, S) \
    extern "C" __global__ void topk_x_##S(const T* x, u64* ko, T* v, i64* ix, i64 size, i64 inner, int n, int keep, int k, int sm) \
    { topk_x<T>(x, ko, v, ix, size, inner, n, keep, k, sm); } \
    extern "C" __global__ void topk_keys_##S(const u64* ki, u64* ko, T* v, i64* ix, i64 count, i64 inner, int n, int keep, int k, int sm) \
    { topk_keys<T>(ki, ko, v, ix, count, inner, n, keep, k, sm); }
FOR_FLOATS(TOPK) TOPK(int, i32) TOPK(signed char, i8) TOPK(unsigned char, u8)
