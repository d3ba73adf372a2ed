// y = (D)x between any two dtypes. Floats to ints truncate toward zero; anything to bool is "!= 0";
// to 16-bit floats rounds to nearest even (through float32, exact for every source but large int64).
template <typename S, typename D>
__device__ __forceinline__ D convert(S s)
{
    if constexpr (Same<D, bool>::value) return Num<S>::to(s) != 0;
    else if constexpr (Num<S>::F)
    {
        float f = Num<S>::to(s);
        if constexpr (Num<D>::F) return Num<D>::from(f);
        else return (D)(i64)f;
    }
    else
    {
        i64 i = (i64)Num<S>::to(s);
        if constexpr (Num<D>::F) return Num<D>::from((float)i);
        else return (D)i;
    }
}

// Elements per thread in the contiguous cast: the wider side moves 16 bytes, so every warp-wide load and
// store is one contiguous 512-byte run (8 per thread made widening casts store 32 bytes per thread as two
// half-coalesced accesses: 72% of copy bandwidth for float16 -> float32, against 92% with 4).
template <typename S, typename D> struct CastWidth { static const int E = 16 / (sizeof(S) > sizeof(D) ? sizeof(S) : sizeof(D)); };

// Contiguous, 16-byte aligned x and y: CastWidth elements per thread per step (vector loads and stores), then a tail.
template <typename S, typename D>
__device__ void cast_contig(const S* __restrict__ x, D* __restrict__ y, i64 n)
{
    const int E = CastWidth<S, D>::E;
    i64 chunks = n / E;
    const Vec<S, E>* xc = (const Vec<S, E>*)x;
    Vec<D, E>* yc = (Vec<D, E>*)y;
    for (i64 i = global_id(); i < chunks; i += grid_size())
    {
        Vec<S, E> a = xc[i];
        Vec<D, E> b;
#pragma unroll
        for (int k = 0; k < E; k++) b.v[k] = convert<S, D>(a.v[k]);
        yc[i] = b;
    }
    for (i64 i = chunks * E + global_id(); i < n; i += grid_size()) y[i] = convert<S, D>(x[i]);
}

// Operands y, x.
template <typename S, typename D>
__device__ void cast_strided(const S* __restrict__ x, D* __restrict__ y, Layout L, i64 n)
{
    for (i64 i = global_id(); i < n; i += grid_size())
    {
        i64 off[2];
        offsets<2>(L, i, off);
        y[off[0]] = convert<S, D>(x[off[1]]);
    }
}

#define CAST_TO(D, DS, S, SS) \
    extern "C" __global__ void cast_contig_##SS##_##DS(const S* x, D* y, i64 n) { cast_contig<S, D>(x, y, n); } \
    extern "C" __global__ void cast_strided_##SS##_##DS(const S* x, D* y, Layout L, i64 n) { cast_strided<S, D>(x, y, L, n); }
#define CAST_FROM(S, SS) \
    CAST_TO(float, f32, S, SS) CAST_TO(half_t, f16, S, SS) CAST_TO(bf16_t, bf16, S, SS) \
    CAST_TO(signed char, i8, S, SS) CAST_TO(unsigned char, u8, S, SS) CAST_TO(int, i32, S, SS) \
    CAST_TO(i64, i64, S, SS) CAST_TO(bool, b8, S, SS)
FOR_ALL(CAST_FROM)
