// y = f(x) for floating dtypes. op values follow Osprey.Core.Backends.UnaryKind.
enum { U_IDENTITY, U_NEG, U_ABS, U_SQRT, U_EXP, U_LOG, U_RELU, U_RELU6, U_LEAKY, U_SILU, U_SIGMOID, U_HARDSIGMOID, U_HARDSWISH, U_TANH, U_GELU, U_CLAMP };

// GELU: 16-bit outputs use PyTorch's form 0.5x(1 + erf(x/sqrt2)) (erff is about half the cost of erfcf, which
// decides the speed of a 16-bit kernel, and its cancellation for x << 0 is far below a 16-bit ulp); float32 uses
// erfc, which keeps full relative accuracy for x << 0.
template <typename T>
__device__ __forceinline__ float gelu_f(float x)
{
    if constexpr (sizeof(T) == 2) return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    else return 0.5f * x * erfcf(-x * 0.70710678118654752f);
}

template <typename T>
__device__ __forceinline__ float unary_f(int op, float x, float a, float b)
{
    switch (op)
    {
    case U_IDENTITY: return x;
    case U_NEG: return -x;
    case U_ABS: return fabsf(x);
    case U_SQRT: return sqrtf(x);
    case U_EXP: return expf(x);
    case U_LOG: return logf(x);
    case U_RELU: return x > 0.f ? x : (is_nan(x) ? x : 0.f);
    case U_RELU6: return is_nan(x) ? x : fminf(fmaxf(x, 0.f), 6.f);
    case U_LEAKY: return x > 0.f ? x : x * a;
    case U_SILU: return x / (1.f + expf(-x));
    case U_SIGMOID: return 1.f / (1.f + expf(-x));
    case U_HARDSIGMOID: return is_nan(x) ? x : fminf(fmaxf(x / 6.f + 0.5f, 0.f), 1.f);
    case U_HARDSWISH: return is_nan(x) ? x : x * fminf(fmaxf(x / 6.f + 0.5f, 0.f), 1.f);
    case U_TANH: return tanhf(x);
    case U_GELU: return gelu_f<T>(x);
    case U_CLAMP: return is_nan(x) ? x : fminf(fmaxf(x, a), b);
    default: return qnan();
    }
}

// Contiguous x and y, 16-byte aligned: one 16-byte pack per thread per step, then a scalar tail.
// OP is a template argument so that the per-element switch folds away.
template <typename T, int OP>
__device__ void unary_contig_op(const T* __restrict__ x, T* __restrict__ y, i64 n, float a, float b)
{
    typedef Num<T> N;
    const int V = 16 / sizeof(T);
    i64 packs = n / V;
    const Pack<T>* xp = (const Pack<T>*)x;
    Pack<T>* yp = (Pack<T>*)y;
    for (i64 i = global_id(); i < packs; i += grid_size())
    {
        Pack<T> p = xp[i], q;
#pragma unroll
        for (int k = 0; k < V; k++) q.v[k] = N::from(unary_f<T>(OP, N::to(p.v[k]), a, b));
        yp[i] = q;
    }
    for (i64 i = packs * V + global_id(); i < n; i += grid_size()) y[i] = N::from(unary_f<T>(OP, N::to(x[i]), a, b));
}

#define UNARY_CASE(K) case K: unary_contig_op<T, K>(x, y, n, a, b); break;
template <typename T>
__device__ void unary_contig(const T* __restrict__ x, T* __restrict__ y, i64 n, int op, float a, float b)
{
    switch (op)
    {
        UNARY_CASE(0) UNARY_CASE(1) UNARY_CASE(2) UNARY_CASE(3) UNARY_CASE(4) UNARY_CASE(5) UNARY_CASE(6) UNARY_CASE(7)
        UNARY_CASE(8) UNARY_CASE(9) UNARY_CASE(10) UNARY_CASE(11) UNARY_CASE(12) UNARY_CASE(13) UNARY_CASE(14) UNARY_CASE(15)
    }
}

// Any layout: operand 0 is y, operand 1 is x.
template <typename T>
__device__ void unary_strided(const T* __restrict__ x, T* __restrict__ y, Layout L, i64 n, int op, float a, float b)
{
    typedef Num<T> N;
    for (i64 i = global_id(); i < n; i += grid_size())
    {
        i64 off[2];
        offsets<2>(L, i, off);
        y[off[0]] = N::from(unary_f<T>(op, N::to(x[off[1]]), a, b));
    }
}

#define UNARY(T, S) \
    extern "C" __global__ void unary_contig_##S(const T* x, T* y, i64 n, int op, float a, float b) { unary_contig<T>(x, y, n, op, a, b); } \
    extern "C" __global__ void unary_strided_##S(const T* x, T* y, Layout L, i64 n, int op, float a, float b) { unary_strided<T>(x, y, L, n, op, a, b); }
FOR_FLOATS(UNARY)
