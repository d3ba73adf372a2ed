// Backward (training) kernels: activation derivatives, pooling and resize input gradients, gather's scatter-add.
// Pooling and resize use a gather formulation: one thread per input-gradient element sums the output
// gradients of every window or tap that reads it, in the CPU kernel's order, so results are deterministic
// and need no zeroing or atomics. Arithmetic in float32; 16-bit tensors are read and written through Num<T>.
// op values follow Osprey.Core.Backends.UnaryKind.
enum { G_IDENTITY, G_NEG, G_ABS, G_SQRT, G_EXP, G_LOG, G_RELU, G_RELU6, G_LEAKY, G_SILU, G_SIGMOID, G_HARDSIGMOID, G_HARDSWISH, G_TANH, G_GELU, G_CLAMP };

// d = g * op'(x), from y (the forward output) where the kind allows it, as CpuBackend.UnaryDerivative.
__device__ __forceinline__ float unary_grad(int op, float x, float y, float g, float a, float b)
{
    switch (op)
    {
    case G_IDENTITY: return g;
    case G_NEG: return -g;
    case G_ABS: return g * (x > 0.f ? 1.f : (x < 0.f ? -1.f : (is_nan(x) ? qnan() : 0.f)));
    case G_SQRT: return g / (2.f * y);
    case G_EXP: return g * y;
    case G_LOG: return g / x;
    case G_RELU: return y > 0.f ? g : 0.f;
    case G_RELU6: return (y > 0.f && y < 6.f) ? g : 0.f;
    case G_LEAKY: return x > 0.f ? g : g * a;
    case G_SILU: { float s = 1.f / (1.f + expf(-x)); return g * s * (1.f + x * (1.f - s)); }
    case G_SIGMOID: return g * (1.f - y) * y;
    case G_HARDSIGMOID: return (x > -3.f && x < 3.f) ? g / 6.f : 0.f;
    case G_HARDSWISH: return x < -3.f ? 0.f : (x <= 3.f ? g * (x / 3.f + 0.5f) : g);
    case G_TANH: return g * (1.f - y * y);
    case G_GELU:
    {
        float cdf = 0.5f * erfcf(-x * 0.70710678118654752f);
        float pdf = expf(-0.5f * x * x) * 0.39894228040143268f;
        return g * (cdf + x * pdf);
    }
    case G_CLAMP: return (x >= a && x <= b) ? g : 0.f;
    default: return qnan();
    }
}

// x, y, gy, gx contiguous, n elements each.
template <typename T>
__device__ void unary_backward(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx, i64 n, int op, float a, float b)
{
    typedef Num<T> N;
    for (i64 i = global_id(); i < n; i += grid_size())
        gx[i] = N::from(unary_grad(op, N::to(x[i]), N::to(y[i]), N::to(gy[i]), a, b));
}

// Sizes of x / gx (n, c, h, w) and of gy (oh, ow); threads walk gx in its memory order (nhwc = 1: channels fastest).
// Strides in elements of x (sx*), gy (sg*) and gx (sd*).
struct BGeo
{
    int n, c, h, w, oh, ow;
    int nhwc;
    int pad0;
    i64 sxn, sxc, sxh, sxw;
    i64 sgn, sgc, sgh, sgw;
    i64 sdn, sdc, sdh, sdw;
};

__device__ __forceinline__ void in_coords(const BGeo& g, i64 i, int& n, int& c, int& y, int& x)
{
    if (g.nhwc) { c = (int)(i % g.c); i /= g.c; x = (int)(i % g.w); i /= g.w; y = (int)(i % g.h); n = (int)(i / g.h); }
    else { x = (int)(i % g.w); i /= g.w; y = (int)(i % g.h); i /= g.h; c = (int)(i % g.c); n = (int)(i / g.c); }
}

// The output positions o (0 <= o < outSize) whose window [o * s - p, o * s - p + k) holds input position i.
__device__ __forceinline__ void window_range(int i, int k, int s, int p, int outSize, int& lo, int& hi)
{
    int t = i + p - k + 1;                       // o * s >= t
    lo = t <= 0 ? 0 : (t + s - 1) / s;
    hi = min((i + p) / s, outSize - 1);          // o * s <= i + p
}

// kind 0 max (the gradient goes to the first maximum of each window, NaN first, as CpuBackend.Pool2dBackward),
// 1 average (gy / divisor with PyTorch's count_include_pad rules, as CpuBackend.PoolWindow).
template <typename T>
__device__ void pool2d_backward(const T* __restrict__ x, const T* __restrict__ gy, T* __restrict__ gx, BGeo g,
    int kh, int kw, int sh, int sw, int ph, int pw, int kind, int countPad)
{
    typedef Num<T> N;
    i64 total = (i64)g.n * g.c * g.h * g.w;
    for (i64 i = global_id(); i < total; i += grid_size())
    {
        int n, c, iy, ix;
        in_coords(g, i, n, c, iy, ix);
        const T* xb = x + n * g.sxn + c * g.sxc;
        const T* gb = gy + n * g.sgn + c * g.sgc;
        int oy0, oy1, ox0, ox1;
        window_range(iy, kh, sh, ph, g.oh, oy0, oy1);
        window_range(ix, kw, sw, pw, g.ow, ox0, ox1);
        float acc = 0.f;
        for (int oy = oy0; oy <= oy1; oy++)
            for (int ox = ox0; ox <= ox1; ox++)
            {
                int h0 = oy * sh - ph, w0 = ox * sw - pw;
                float v = N::to(gb[oy * g.sgh + ox * g.sgw]);
                if (kind == 0)
                {
                    int h1 = min(h0 + kh, g.h), w1 = min(w0 + kw, g.w);
                    h0 = max(h0, 0); w0 = max(w0, 0);
                    int by = -1, bx = -1;
                    float best = -__int_as_float(0x7f800000);
                    bool stop = false;
                    for (int yy = h0; yy < h1 && !stop; yy++)
                        for (int xx = w0; xx < w1; xx++)
                        {
                            float e = N::to(xb[yy * g.sxh + xx * g.sxw]);
                            if (by < 0 || e > best || is_nan(e))
                            {
                                by = yy; bx = xx; best = e;
                                if (is_nan(e)) { stop = true; break; }
                            }
                        }
                    if (by == iy && bx == ix) acc += v;
                }
                else
                {
                    int h1 = min(h0 + kh, g.h + ph), w1 = min(w0 + kw, g.w + pw);
                    int padded = (h1 - h0) * (w1 - w0);
                    h0 = max(h0, 0); w0 = max(w0, 0);
                    h1 = min(h1, g.h); w1 = min(w1, g.w);
                    int div = countPad ? padded : (h1 - h0) * (w1 - w0);
                    acc += v / (float)div;
                }
            }
        gx[n * g.sdn + c * g.sdc + iy * g.sdh + ix * g.sdw] = N::from(acc);
    }
}

// The source taps of output position d along one axis, as CpuBackend.ResizeTaps (mode 0 nearest, 1 bilinear).
__device__ __forceinline__ void resize_taps(int mode, int inSize, float scale, int d, int& i0, int& i1, float& w1)
{
    if (mode == 0)
    {
        i0 = i1 = min((int)floorf(d * scale), inSize - 1);
        w1 = 0.f;
        return;
    }
    float src = fmaxf(scale * (d + 0.5f) - 0.5f, 0.f);
    int a = (int)src;
    i0 = a;
    i1 = a + (a < inSize - 1 ? 1 : 0);
    w1 = src - a;
}

// Output positions whose taps may reach input position i (a safe superset: taps are rechecked exactly).
__device__ __forceinline__ void tap_range(int i, int inSize, int outSize, int& lo, int& hi)
{
    float inv = (float)outSize / (float)inSize;
    lo = max((int)floorf((i - 1) * inv) - 2, 0);
    hi = min((int)ceilf((i + 2) * inv) + 2, outSize - 1);
}

// The adjoint of resize: gx[iy, ix] = sum over output positions of gy times the weight with which it read (iy, ix).
template <typename T>
__device__ void resize_backward(const T* __restrict__ gy, T* __restrict__ gx, BGeo g, int mode)
{
    typedef Num<T> N;
    i64 total = (i64)g.n * g.c * g.h * g.w;
    float shs = (float)g.h / (float)g.oh, sws = (float)g.w / (float)g.ow;
    for (i64 i = global_id(); i < total; i += grid_size())
    {
        int n, c, iy, ix;
        in_coords(g, i, n, c, iy, ix);
        const T* gb = gy + n * g.sgn + c * g.sgc;
        int oy0, oy1, ox0, ox1;
        tap_range(iy, g.h, g.oh, oy0, oy1);
        tap_range(ix, g.w, g.ow, ox0, ox1);
        float acc = 0.f;
        for (int oy = oy0; oy <= oy1; oy++)
        {
            int y0, y1;
            float b1;
            resize_taps(mode, g.h, shs, oy, y0, y1, b1);
            if (y0 != iy && y1 != iy) continue;
            float b0 = 1.f - b1;
            for (int ox = ox0; ox <= ox1; ox++)
            {
                int x0, x1;
                float a1;
                resize_taps(mode, g.w, sws, ox, x0, x1, a1);
                if (x0 != ix && x1 != ix) continue;
                float v = N::to(gb[oy * g.sgh + ox * g.sgw]);
                if (mode == 0) { acc += v; continue; }
                float a0 = 1.f - a1;
                if (y0 == iy && x0 == ix) acc += b0 * a0 * v;
                if (y0 == iy && x1 == ix) acc += b0 * a1 * v;
                if (y1 == iy && x0 == ix) acc += b1 * a0 * v;
                if (y1 == iy && x1 == ix) acc += b1 * a1 * v;
            }
        }
        gx[n * g.sdn + c * g.sdc + iy * g.sdh + ix * g.sdw] = N::from(acc);
    }
}

// gx[..., index[p], ...] += gy[p] along the axis: L walks index's shape with gx's strides (axis stride zeroed);
// gy and index are contiguous over that shape. Indices outside [0, axisSize) were refused by the forward gather
// and are skipped here rather than written out of bounds.
template <typename I>
__device__ void scatter_add_k(const float* __restrict__ gy, const I* __restrict__ index, float* gx, Layout L, i64 n, i64 axisStride, i64 axisSize)
{
    for (i64 i = global_id(); i < n; i += grid_size())
    {
        i64 off[1];
        offsets<1>(L, i, off);
        i64 at = (i64)index[i];
        if (at < 0 || at >= axisSize) continue;
        atomicAdd(gx + off[0] + at * axisStride, gy[i]);
    }
}

#define BACKWARD(T, S) \
    extern "C" __global__ void unary_backward_##S(const T* x, const T* y, const T* gy, T* gx, i64 n, int op, float a, float b) \
    { unary_backward<T>(x, y, gy, gx, n, op, a, b); } \
    extern "C" __global__ void pool2d_backward_##S(const T* x, const T* gy, T* gx, BGeo g, int kh, int kw, int sh, int sw, int ph, int pw, int kind, int countPad) \
    { pool2d_backward<T>(x, gy, gx, g, kh, kw, sh, sw, ph, pw, kind, countPad); } \
    extern "C" __global__ void resize_backward_##S(const T* gy, T* gx, BGeo g, int mode) { resize_backward<T>(gy, gx, g, mode); }
FOR_FLOATS(BACKWARD)

extern "C" __global__ void scatter_add_f32_i32(const float* gy, const int* ix, float* gx, Layout L, i64 n, i64 st, i64 size) { scatter_add_k<int>(gy, ix, gx, L, n, st, size); }
extern "C" __global__ void scatter_add_f32_i64(const float* gy, const i64* ix, float* gx, Layout L, i64 n, i64 st, i64 size) { scatter_add_k<i64>(gy, ix, gx, L, n, st, size); }
