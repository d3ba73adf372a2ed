// Data movement by element size: strided copy (operands dst, src) and fill with a bit pattern.
template <typename E>
__device__ void copy_strided(const E* __restrict__ src, E* __restrict__ dst, Layout L, i64 n)
{
    for (i64 i = global_id(); i < n; i += grid_size())
    {
        i64 off[2];
        offsets<2>(L, i, off);
        dst[off[0]] = src[off[1]];
    }
}

template <typename E>
__device__ void fill_strided(E* __restrict__ dst, Layout L, i64 n, u64 bits)
{
    E v = (E)bits;
    for (i64 i = global_id(); i < n; i += grid_size())
    {
        i64 off[1];
        offsets<1>(L, i, off);
        dst[off[0]] = v;
    }
}

template <typename E>
__device__ void fill_contig(E* __restrict__ dst, i64 n, u64 bits)
{
    E v = (E)bits;
    for (i64 i = global_id(); i < n; i += grid_size()) dst[i] = v;
}

#define MOVE(E, S) \
    extern "C" __global__ void copy_strided_##S(const E* src, E* dst, Layout L, i64 n) { copy_strided<E>(src, dst, L, n); } \
    extern "C" __global__ void fill_strided_##S(E* dst, Layout L, i64 n, u64 bits) { fill_strided<E>(dst, L, n, bits); } \
    extern "C" __global__ void fill_contig_##S(E* dst, i64 n, u64 bits) { fill_contig<E>(dst, n, bits); }
MOVE(unsigned char, 1) MOVE(unsigned short, 2) MOVE(unsigned int, 4) MOVE(u64, 8)
