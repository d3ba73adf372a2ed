// Reductions over arbitrary axes, argmax along one axis, and (log-)softmax along one axis.
// op values follow Osprey.Core.Backends.ReduceOp: 0 sum, 1 mean, 2 max, 3 min.
enum { R_SUM, R_MEAN, R_MAX, R_MIN };

// Accumulator: float for floating inputs, i64 for integers. Max/min propagate NaN, as PyTorch.
template <typename A> __device__ __forceinline__ A r_identity(int op);
template <> __device__ __forceinline__ float r_identity<float>(int op) { return op == R_MAX ? -__int_as_float(0x7f800000) : op == R_MIN ? __int_as_float(0x7f800000) : 0.f; }
template <> __device__ __forceinline__ i64 r_identity<i64>(int op) { return op == R_MAX ? (i64)0x8000000000000000ULL : op == R_MIN ? (i64)0x7fffffffffffffffLL : 0; }

__device__ __forceinline__ float r_combine(int op, float a, float b)
{
    if (op <= R_MEAN) return a + b;
    if (is_nan(a) || is_nan(b)) return qnan();
    return op == R_MAX ? fmaxf(a, b) : fminf(a, b);
}
__device__ __forceinline__ i64 r_combine(int op, i64 a, i64 b) { return op <= R_MEAN ? a + b : op == R_MAX ? (a > b ? a : b) : (a < b ? a : b); }

template <typename T> struct Acc { typedef typename Num<T>::C C; typedef float A; };
template <> struct Acc<signed char> { typedef i64 A; };
template <> struct Acc<unsigned char> { typedef i64 A; };
template <> struct Acc<int> { typedef i64 A; };
template <> struct Acc<i64> { typedef i64 A; };

// Two layouts of one operand (x): K over the kept dimensions (its linear index is y's index), R over the
// reduced ones. Grid (outputs, slices): block (o, s) reduces slice s of output o's R elements; with one
// slice it writes y, otherwise it writes the partial to part[o * slices + s] for reduce_finish.
template <typename T>
__device__ void reduce_partial(const T* __restrict__ x, T* __restrict__ y, typename Acc<T>::A* __restrict__ part,
    Layout K, Layout R, i64 outputs, i64 count, int slices, int op)
{
    typedef typename Acc<T>::A A;
    __shared__ A shared[32];
    i64 o = blockIdx.x;
    int s = blockIdx.y;
    i64 kOff[1];
    offsets<1>(K, o, kOff);
    i64 per = (count + slices - 1) / slices;
    i64 lo = s * per, hi = lo + per < count ? lo + per : count;
    A acc = r_identity<A>(op);
    for (i64 r = lo + threadIdx.x; r < hi; r += blockDim.x)
    {
        i64 rOff[1];
        offsets<1>(R, r, rOff);
        acc = r_combine(op, acc, (A)Num<T>::to(x[kOff[0] + rOff[0]]));
    }
    for (int d = 16; d > 0; d >>= 1) acc = r_combine(op, acc, (A)__shfl_xor_sync(0xffffffffu, acc, d));
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) shared[warp] = acc;
    __syncthreads();
    if (warp == 0)
    {
        int warps = blockDim.x / 32;
        acc = lane < warps ? shared[lane] : r_identity<A>(op);
        for (int d = 16; d > 0; d >>= 1) acc = r_combine(op, acc, (A)__shfl_xor_sync(0xffffffffu, acc, d));
        if (lane == 0)
        {
            if (slices > 1) part[o * slices + s] = acc;
            else y[o] = Num<T>::from((typename Num<T>::C)(op == R_MEAN ? (A)((float)acc / (float)count) : acc));
        }
    }
}

template <typename T>
__device__ void reduce_finish(const typename Acc<T>::A* __restrict__ part, T* __restrict__ y, i64 outputs, i64 count, int slices, int op)
{
    typedef typename Acc<T>::A A;
    for (i64 o = global_id(); o < outputs; o += grid_size())
    {
        A acc = r_identity<A>(op);
        for (int s = 0; s < slices; s++) acc = r_combine(op, acc, part[o * slices + s]);
        y[o] = Num<T>::from((typename Num<T>::C)(op == R_MEAN ? (A)((float)acc / (float)count) : acc));
    }
}

#define REDUCE(T, S) \
    extern "C" __global__ void reduce_partial_##S(const T* x, T* y, Acc<T>::A* part, Layout K, Layout R, i64 outputs, i64 count, int slices, int op) \
    { reduce_partial<T>(x, y, part, K, R, outputs, count, slices, op); } \
    extern "C" __global__ void reduce_finish_##S(const Acc<T>::A* part, T* y, i64 outputs, i64 count, int slices, int op) \
    { reduce_finish<T>(part, y, outputs, count, slices, op); }
FOR_NUMERIC(REDUCE)

// Argmax along one axis: one warp per output. K walks x over the other dimensions (y's index);
// the axis has `size` elements `step` apart. The first largest wins; NaN counts as largest (PyTorch).
template <typename T>
__device__ void argmax_axis(const T* __restrict__ x, i64* __restrict__ y, Layout K, i64 outputs, i64 size, i64 step)
{
    typedef typename Num<T>::C C;
    int lane = threadIdx.x % 32;
    i64 warp = global_id() / 32, warps = grid_size() / 32;
    for (i64 o = warp; o < outputs; o += warps)
    {
        i64 base[1];
        offsets<1>(K, o, base);
        C best = 0;
        i64 bi = -1;
        for (i64 i = lane; i < size; i += 32)
        {
            C v = Num<T>::to(x[base[0] + i * step]);
            bool better = bi < 0 || (is_nan((float)v) && !is_nan((float)best)) || (!is_nan((float)best) && v > best);
            if (better) { best = v; bi = i; }
        }
        for (int d = 16; d > 0; d >>= 1)
        {
            C ov = __shfl_xor_sync(0xffffffffu, best, d);
            i64 oi = __shfl_xor_sync(0xffffffffu, bi, d);
            bool take;
            if (oi < 0) take = false;
            else if (bi < 0) take = true;
            else
            {
                bool on = is_nan((float)ov), bn = is_nan((float)best);
                if (on != bn) take = on;
                else if (on || ov == best) take = oi < bi;
                else take = ov > best;
            }
            if (take) { best = ov; bi = oi; }
        }
        if (lane == 0) y[o] = bi;
    }
}

#define ARGMAX(T, S) \
    extern "C" __global__ void argmax_##S(const T* x, i64* y, Layout K, i64 outputs, i64 size, i64 step) { argmax_axis<T>(x, y, K, outputs, size, step); }
FOR_NUMERIC(ARGMAX)

// Softmax over the last axis (inner == 1): one warp per row of `size` contiguous elements.
template <typename T>
__device__ void softmax_rows(const T* __restrict__ x, T* __restrict__ y, i64 rows, i64 size, int logMode)
{
    typedef Num<T> N;
    int lane = threadIdx.x % 32;
    i64 warp = global_id() / 32, warps = grid_size() / 32;
    for (i64 r = warp; r < rows; r += warps)
    {
        const T* xr = x + r * size;
        T* yr = y + r * size;
        float m = -__int_as_float(0x7f800000);
        for (i64 i = lane; i < size; i += 32) m = fmaxf(m, N::to(xr[i]));
        m = warp_max(m);
        float sum = 0.f;
        for (i64 i = lane; i < size; i += 32) sum += expf(N::to(xr[i]) - m);
        sum = warp_sum(sum);
        float ls = logf(sum), inv = 1.f / sum;
        for (i64 i = lane; i < size; i += 32)
        {
            float v = N::to(xr[i]) - m;
            yr[i] = N::from(logMode ? v - ls : expf(v) * inv);
        }
    }
}

// Softmax over a middle axis: one thread per (outer, inner) column, elements `inner` apart.
template <typename T>
__device__ void softmax_cols(const T* __restrict__ x, T* __restrict__ y, i64 outer, i64 size, i64 inner, int logMode)
{
    typedef Num<T> N;
    for (i64 c = global_id(); c < outer * inner; c += grid_size())
    {
        i64 o = c / inner, i = c % inner;
        i64 base = o * size * inner + i;
        float m = -__int_as_float(0x7f800000);
        for (i64 k = 0; k < size; k++) m = fmaxf(m, N::to(x[base + k * inner]));
        float sum = 0.f;
        for (i64 k = 0; k < size; k++) sum += expf(N::to(x[base + k * inner]) - m);
        float ls = logf(sum), inv = 1.f / sum;
        for (i64 k = 0; k < size; k++)
        {
            float v = N::to(x[base + k * inner]) - m;
            y[base + k * inner] = N::from(logMode ? v - ls : expf(v) * inv);
        }
    }
}

#define SOFTMAX(T, S) \
    extern "C" __global__ void softmax_rows_##S(const T* x, T* y, i64 rows, i64 size, int logMode) { softmax_rows<T>(x, y, rows, size, logMode); } \
    extern "C" __global__ void softmax_cols_##S(const T* x, T* y, i64 outer, i64 size, i64 inner, int logMode) { softmax_cols<T>(x, y, outer, size, inner, logMode); }
FOR_FLOATS(SOFTMAX)

// Short reductions over many outputs: one thread per output (the kept dimensions are usually innermost,
// so neighbouring threads read neighbouring elements).
template <typename T>
__device__ void reduce_thread(const T* __restrict__ x, T* __restrict__ y, Layout K, Layout R, i64 outputs, i64 count, int op)
{
    typedef typename Acc<T>::A A;
    for (i64 o = global_id(); o < outputs; o += grid_size())
    {
        i64 kOff[1];
        offsets<1>(K, o, kOff);
        A acc = r_identity<A>(op);
        for (i64 r = 0; r < count; r++)
        {
            i64 rOff[1];
            offsets<1>(R, r, rOff);
            acc = r_combine(op, acc, (A)Num<T>::to(x[kOff[0] + rOff[0]]));
        }
        y[o] = Num<T>::from((typename Num<T>::C)(op == R_MEAN ? (A)((float)acc / (float)count) : acc));
    }
}

#define REDUCE_THREAD(T, S) \
    extern "C" __global__ void reduce_thread_##S(const T* x, T* y, Layout K, Layout R, i64 outputs, i64 count, int op) \
    { reduce_thread<T>(x, y, K, R, outputs, count, op); }
FOR_NUMERIC(REDUCE_THREAD)
