// Gather and index_select move elements by size (E); index type I is int or i64.

// torch.gather: operands (y, x with its axis stride zeroed, index) over y's shape; x's axis adds index * axisStride.
template <typename E, typename I>
__device__ void gather_k(const E* __restrict__ x, const I* __restrict__ index, E* __restrict__ y, Layout L, i64 n, i64 axisStride)
{
    for (i64 i = global_id(); i < n; i += grid_size())
    {
        i64 off[3];
        offsets<3>(L, i, off);
        y[off[0]] = x[off[1] + (i64)index[off[2]] * axisStride];
    }
}

// torch.index_select: operands (y, x with its axis stride zeroed, index: its stride on the axis, 0 elsewhere).
template <typename E, typename I>
__device__ void index_select_k(const E* __restrict__ x, const I* __restrict__ index, E* __restrict__ y, Layout L, i64 n, i64 axisStride)
{
    for (i64 i = global_id(); i < n; i += grid_size())
    {
        i64 off[3];
        offsets<3>(L, i, off);
        y[off[0]] = x[off[1] + (i64)index[off[2]] * axisStride];
    }
}

#define INDEX(E, S) \
    extern "C" __global__ void gather_##S##_i32(const E* x, const int* ix, E* y, Layout L, i64 n, i64 st) { gather_k<E, int>(x, ix, y, L, n, st); } \
    extern "C" __global__ void gather_##S##_i64(const E* x, const i64* ix, E* y, Layout L, i64 n, i64 st) { gather_k<E, i64>(x, ix, y, L, n, st); } \
    extern "C" __global__ void index_select_##S##_i32(const E* x, const int* ix, E* y, Layout L, i64 n, i64 st) { index_select_k<E, int>(x, ix, y, L, n, st); } \
    extern "C" __global__ void index_select_##S##_i64(const E* x, const i64* ix, E* y, Layout L, i64 n, i64 st) { index_select_k<E, i64>(x, ix, y, L, n, st); }
INDEX(unsigned char, 1) INDEX(unsigned short, 2) INDEX(unsigned int, 4) INDEX(u64, 8)
