// y = a op b (arithmetic, same dtype) or y = a cmp b (bool). op values follow Osprey.Core.Backends.BinaryOp.
enum { B_ADD, B_SUB, B_MUL, B_DIV, B_MAX, B_MIN, B_POW, B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE };

__device__ __forceinline__ float binary_f(int op, float a, float b)
{
    switch (op)
    {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_MAX: return (is_nan(a) || is_nan(b)) ? qnan() : fmaxf(a, b);
    case B_MIN: return (is_nan(a) || is_nan(b)) ? qnan() : fminf(a, b);
    case B_POW: return powf(a, b);
    case B_EQ: return a == b;
    case B_NE: return a != b;
    case B_LT: return a < b;
    case B_LE: return a <= b;
    case B_GT: return a > b;
    case B_GE: return a >= b;
    default: return qnan();
    }
}

// Integer arithmetic: division truncates toward zero and x/0 gives 0; pow by squaring (negative exponents give 0 unless |a| = 1).
template <typename I>
__device__ __forceinline__ I binary_i(int op, I a, I b)
{
    switch (op)
    {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return b == 0 ? (I)0 : a / b;
    case B_MAX: return a > b ? a : b;
    case B_MIN: return a < b ? a : b;
    case B_POW:
    {
        if (b < 0) return a == 1 ? (I)1 : a == -1 ? ((b & 1) ? (I)-1 : (I)1) : (I)0;
        I r = 1;
        while (b > 0) { if (b & 1) r *= a; a *= a; b >>= 1; }
        return r;
    }
    case B_EQ: return a == b;
    case B_NE: return a != b;
    case B_LT: return a < b;
    case B_LE: return a <= b;
    case B_GT: return a > b;
    case B_GE: return a >= b;
    default: return 0;
    }
}

__device__ __forceinline__ float apply(int op, float a, float b) { return binary_f(op, a, b); }
__device__ __forceinline__ int apply(int op, int a, int b) { return binary_i<int>(op, a, b); }
__device__ __forceinline__ i64 apply(int op, i64 a, i64 b) { return binary_i<i64>(op, a, b); }

template <typename T, typename O> struct Out { __device__ static O make(typename Num<T>::C r) { return Num<T>::from(r); } };
template <typename T> struct Out<T, bool> { __device__ static bool make(typename Num<T>::C r) { return r != 0; } };

// Contiguous a, b, y (16-byte aligned): packs of 16 bytes of the input type.
template <typename T, typename O>
__device__ void binary_contig(const T* __restrict__ a, const T* __restrict__ b, O* __restrict__ y, i64 n, int op)
{
    typedef Num<T> N;
    const int V = 16 / sizeof(T);
    i64 packs = n / V;
    const Pack<T>* ap = (const Pack<T>*)a;
    const Pack<T>* bp = (const Pack<T>*)b;
    for (i64 i = global_id(); i < packs; i += grid_size())
    {
        Pack<T> pa = ap[i], pb = bp[i];
        if constexpr (Same<T, O>::value)
        {
            Pack<T> q;
#pragma unroll
            for (int k = 0; k < V; k++) q.v[k] = Out<T, O>::make(apply(op, N::to(pa.v[k]), N::to(pb.v[k])));
            ((Pack<T>*)y)[i] = q;
        }
        else
        {
#pragma unroll
            for (int k = 0; k < V; k++) y[i * V + k] = Out<T, O>::make(apply(op, N::to(pa.v[k]), N::to(pb.v[k])));
        }
    }
    for (i64 i = packs * V + global_id(); i < n; i += grid_size()) y[i] = Out<T, O>::make(apply(op, N::to(a[i]), N::to(b[i])));
}

// Contiguous x and y, the other operand one value (a scalar broadcast); scalarFirst puts it on the left.
template <typename T, typename O>
__device__ void binary_scalar(const T* __restrict__ x, const T* __restrict__ s, O* __restrict__ y, i64 n, int op, int scalarFirst)
{
    typedef Num<T> N;
    typedef typename Num<T>::C C;
    const int V = 16 / sizeof(T);
    C sv = N::to(*s);
    i64 packs = n / V;
    const Pack<T>* xp = (const Pack<T>*)x;
    for (i64 i = global_id(); i < packs; i += grid_size())
    {
        Pack<T> px = xp[i];
        if constexpr (Same<T, O>::value)
        {
            Pack<T> q;
#pragma unroll
            for (int k = 0; k < V; k++)
            {
                C v = N::to(px.v[k]);
                q.v[k] = Out<T, O>::make(scalarFirst ? apply(op, sv, v) : apply(op, v, sv));
            }
            ((Pack<T>*)y)[i] = q;
        }
        else
        {
#pragma unroll
            for (int k = 0; k < V; k++)
            {
                C v = N::to(px.v[k]);
                y[i * V + k] = Out<T, O>::make(scalarFirst ? apply(op, sv, v) : apply(op, v, sv));
            }
        }
    }
    for (i64 i = packs * V + global_id(); i < n; i += grid_size())
    {
        C v = N::to(x[i]);
        y[i] = Out<T, O>::make(scalarFirst ? apply(op, sv, v) : apply(op, v, sv));
    }
}

// Any layout (broadcast dimensions have stride 0): operands y, a, b.
template <typename T, typename O>
__device__ void binary_strided(const T* __restrict__ a, const T* __restrict__ b, O* __restrict__ y, Layout L, i64 n, int op)
{
    typedef Num<T> N;
    for (i64 i = global_id(); i < n; i += grid_size())
    {
        i64 off[3];
        offsets<3>(L, i, off);
        y[off[0]] = Out<T, O>::make(apply(op, N::to(a[off[1]]), N::to(b[off[2]])));
    }
}

#define BINARY(T, S) \
    extern "C" __global__ void binary_contig_##S(const T* a, const T* b, T* y, i64 n, int op) { binary_contig<T, T>(a, b, y, n, op); } \
    extern "C" __global__ void binary_scalar_##S(const T* x, const T* s, T* y, i64 n, int op, int f) { binary_scalar<T, T>(x, s, y, n, op, f); } \
    extern "C" __global__ void binary_strided_##S(const T* a, const T* b, T* y, Layout L, i64 n, int op) { binary_strided<T, T>(a, b, y, L, n, op); } \
    extern "C" __global__ void compare_contig_##S(const T* a, const T* b, bool* y, i64 n, int op) { binary_contig<T, bool>(a, b, y, n, op); } \
    extern "C" __global__ void compare_scalar_##S(const T* x, const T* s, bool* y, i64 n, int op, int f) { binary_scalar<T, bool>(x, s, y, n, op, f); } \
    extern "C" __global__ void compare_strided_##S(const T* a, const T* b, bool* y, Layout L, i64 n, int op) { binary_strided<T, bool>(a, b, y, L, n, op); }
FOR_ALL(BINARY)

// y = cond ? a : b, operands y, cond, a, b in the layout.
template <typename T>
__device__ void where_strided(const bool* __restrict__ c, const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, Layout L, i64 n)
{
    for (i64 i = global_id(); i < n; i += grid_size())
    {
        i64 off[4];
        offsets<4>(L, i, off);
        y[off[0]] = c[off[1]] ? a[off[2]] : b[off[3]];
    }
}

template <typename T>
__device__ void where_contig(const bool* __restrict__ c, const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, i64 n)
{
    for (i64 i = global_id(); i < n; i += grid_size()) y[i] = c[i] ? a[i] : b[i];
}

#define WHERE(T, S) \
    extern "C" __global__ void where_strided_##S(const bool* c, const T* a, const T* b, T* y, Layout L, i64 n) { where_strided<T>(c, a, b, y, L, n); } \
    extern "C" __global__ void where_contig_##S(const bool* c, const T* a, const T* b, T* y, i64 n) { where_contig<T>(c, a, b, y, n); }
WHERE(unsigned char, 1) WHERE(unsigned short, 2) WHERE(unsigned int, 4) WHERE(u64, 8)
