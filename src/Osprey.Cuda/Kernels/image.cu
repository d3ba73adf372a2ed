// Pooling and resizing of [N, C, H, W] tensors in either memory format: elements are addressed through
// the tensors' own strides (sx*/sy* in elements), and threads walk y in its memory order (nhwc = 1 puts
// channels fastest) so that writes are coalesced.

struct Geo
{
    int n, c, h, w, oh, ow;
    int nhwc;
    int pad0;
    i64 sxn, sxc, sxh, sxw;
    i64 syn, syc, syh, syw;
};

__device__ __forceinline__ void out_coords(const Geo& g, i64 i, int& n, int& c, int& y, int& x)
{
    if (g.nhwc) { c = (int)(i % g.c); i /= g.c; x = (int)(i % g.ow); i /= g.ow; y = (int)(i % g.oh); n = (int)(i / g.oh); }
    else { x = (int)(i % g.ow); i /= g.ow; y = (int)(i % g.oh); i /= g.oh; c = (int)(i % g.c); n = (int)(i / g.c); }
}

// The same with 32-bit division (64-bit division costs several times more, and pooling is bound by it otherwise).
__device__ __forceinline__ void out_coords32(const Geo& g, unsigned i, int& n, int& c, int& y, int& x)
{
    if (g.nhwc) { c = (int)(i % (unsigned)g.c); i /= (unsigned)g.c; x = (int)(i % (unsigned)g.ow); i /= (unsigned)g.ow; y = (int)(i % (unsigned)g.oh); n = (int)(i / (unsigned)g.oh); }
    else { x = (int)(i % (unsigned)g.ow); i /= (unsigned)g.ow; y = (int)(i % (unsigned)g.oh); i /= (unsigned)g.oh; c = (int)(i % (unsigned)g.c); n = (int)(i / (unsigned)g.c); }
}

// kind 0 max, 1 average (PyTorch's divisor rules for padding and ceil_mode windows).
template <typename T>
__device__ void pool2d(const T* __restrict__ x, T* __restrict__ y, Geo g, int kh, int kw, int sh, int sw, int ph, int pw, int kind, int countPad)
{
    typedef Num<T> N;
    i64 total = (i64)g.n * g.c * g.oh * g.ow;
    bool small = total < 0xffffffffLL;   // every index (and index + grid size) fits 32 bits
    for (i64 i = global_id(); i < total; i += grid_size())
    {
        int n, c, oy, ox;
        if (small) out_coords32(g, (unsigned)i, n, c, oy, ox);
        else out_coords(g, i, n, c, oy, ox);
        const T* xb = x + n * g.sxn + c * g.sxc;
        int h0 = oy * sh - ph, w0 = ox * sw - pw;
        float r;
        if (kind == 0)
        {
            int h1 = min(h0 + kh, g.h), w1 = min(w0 + kw, g.w);
            h0 = max(h0, 0); w0 = max(w0, 0);
            r = -__int_as_float(0x7f800000);
            for (int yy = h0; yy < h1; yy++)
                for (int xx = w0; xx < w1; xx++)
                {
                    float v = N::to(xb[yy * g.sxh + xx * g.sxw]);
                    if (v > r || is_nan(v)) r = v;
                    if (is_nan(r)) break;
                }
        }
        else
        {
            int h1 = min(h0 + kh, g.h + ph), w1 = min(w0 + kw, g.w + pw);
            int poolSize = (h1 - h0) * (w1 - w0);
            h0 = max(h0, 0); w0 = max(w0, 0);
            h1 = min(h1, g.h); w1 = min(w1, g.w);
            float s = 0.f;
            for (int yy = h0; yy < h1; yy++)
                for (int xx = w0; xx < w1; xx++) s += N::to(xb[yy * g.sxh + xx * g.sxw]);
            int div = countPad ? poolSize : (h1 - h0) * (w1 - w0);
            r = s / (float)div;
        }
        y[n * g.syn + c * g.syc + oy * g.syh + ox * g.syw] = N::from(r);
    }
}

// Channels-last pooling, vectorised: x [N, H, W, C] and y [N, OH, OW, C] dense, C a multiple of V, both 16-byte
// aligned. One thread per output pixel and group of V channels loads 16 bytes (V = 8 fp16/bf16, 4 fp32) per window
// tap, so every access is a full 16-byte transaction. The same window and divisor rules as pool2d, per lane.
template <typename T>
__device__ void pool2d_nhwc_vec(const T* __restrict__ x, T* __restrict__ y, Geo g, int kh, int kw, int sh, int sw, int ph, int pw, int kind, int countPad)
{
    typedef Num<T> N;
    const int V = 16 / (int)sizeof(T);
    typedef Pack<T> P;
    int cg = g.c / V;
    i64 total = (i64)g.n * g.oh * g.ow * cg;
    bool small = total < 0xffffffffLL;
    for (i64 i = global_id(); i < total; i += grid_size())
    {
        int c, ox, oy, n;
        if (small)
        {
            unsigned u = (unsigned)i;
            c = (int)(u % (unsigned)cg); u /= (unsigned)cg; ox = (int)(u % (unsigned)g.ow); u /= (unsigned)g.ow;
            oy = (int)(u % (unsigned)g.oh); n = (int)(u / (unsigned)g.oh);
        }
        else
        {
            i64 u = i;
            c = (int)(u % cg); u /= cg; ox = (int)(u % g.ow); u /= g.ow; oy = (int)(u % g.oh); n = (int)(u / g.oh);
        }
        const P* xb = (const P*)(x + (i64)n * g.h * g.w * g.c) + c;
        int h0 = oy * sh - ph, w0 = ox * sw - pw;
        float r[16 / sizeof(T)];
        int div = 1;
        if (kind == 0)
        {
#pragma unroll
            for (int e = 0; e < V; e++) r[e] = -__int_as_float(0x7f800000);
            int h1 = min(h0 + kh, g.h), w1 = min(w0 + kw, g.w);
            h0 = max(h0, 0); w0 = max(w0, 0);
            for (int yy = h0; yy < h1; yy++)
                for (int xx = w0; xx < w1; xx++)
                {
                    P v = xb[((i64)yy * g.w + xx) * cg];
#pragma unroll
                    for (int e = 0; e < V; e++)
                    {
                        float f = N::to(v.v[e]);
                        if (f > r[e] || is_nan(f)) r[e] = f;
                    }
                }
        }
        else
        {
#pragma unroll
            for (int e = 0; e < V; e++) r[e] = 0.f;
            int h1 = min(h0 + kh, g.h + ph), w1 = min(w0 + kw, g.w + pw);
            int poolSize = (h1 - h0) * (w1 - w0);
            h0 = max(h0, 0); w0 = max(w0, 0);
            h1 = min(h1, g.h); w1 = min(w1, g.w);
            for (int yy = h0; yy < h1; yy++)
                for (int xx = w0; xx < w1; xx++)
                {
                    P v = xb[((i64)yy * g.w + xx) * cg];
#pragma unroll
                    for (int e = 0; e < V; e++) r[e] += N::to(v.v[e]);
                }
            div = countPad ? poolSize : (h1 - h0) * (w1 - w0);
        }
        P o;
#pragma unroll
        for (int e = 0; e < V; e++) o.v[e] = N::from(kind == 0 ? r[e] : r[e] / (float)div);
        ((P*)y)[(((i64)n * g.oh + oy) * g.ow + ox) * cg + c] = o;
    }
}

// Source coordinate scale as PyTorch computes it for align_corners=False: in / out, in float.
__device__ __forceinline__ float area_scale(int in, int out) { return (float)in / (float)out; }

// mode 0 nearest (floor(dst * scale), clamped), 1 bilinear (half-pixel centres, clamped at 0).
template <typename T>
__device__ void resize(const T* __restrict__ x, T* __restrict__ y, Geo g, int mode)
{
    typedef Num<T> N;
    i64 total = (i64)g.n * g.c * g.oh * g.ow;
    float shs = area_scale(g.h, g.oh), sws = area_scale(g.w, g.ow);
    bool small = total < 0xffffffffLL;
    for (i64 i = global_id(); i < total; i += grid_size())
    {
        int n, c, oy, ox;
        if (small) out_coords32(g, (unsigned)i, n, c, oy, ox);
        else out_coords(g, i, n, c, oy, ox);
        const T* xb = x + n * g.sxn + c * g.sxc;
        float r;
        if (mode == 0)
        {
            int sy = min((int)floorf(oy * shs), g.h - 1), sx = min((int)floorf(ox * sws), g.w - 1);
            r = N::to(xb[sy * g.sxh + sx * g.sxw]);
        }
        else
        {
            float fy = fmaxf(shs * (oy + 0.5f) - 0.5f, 0.f), fx = fmaxf(sws * (ox + 0.5f) - 0.5f, 0.f);
            int y0 = (int)fy, x0 = (int)fx;
            int y1 = y0 + (y0 < g.h - 1 ? 1 : 0), x1 = x0 + (x0 < g.w - 1 ? 1 : 0);
            float ly = fy - y0, lx = fx - x0;
            float v00 = N::to(xb[y0 * g.sxh + x0 * g.sxw]), v01 = N::to(xb[y0 * g.sxh + x1 * g.sxw]);
            float v10 = N::to(xb[y1 * g.sxh + x0 * g.sxw]), v11 = N::to(xb[y1 * g.sxh + x1 * g.sxw]);
            r = (1.f - ly) * ((1.f - lx) * v00 + lx * v01) + ly * ((1.f - lx) * v10 + lx * v11);
        }
        y[n * g.syn + c * g.syc + oy * g.syh + ox * g.syw] = N::from(r);
    }
}

#define IMAGE(T, S) \
    extern "C" __global__ void pool2d_##S(const T* x, T* y, Geo g, int kh, int kw, int sh, int sw, int ph, int pw, int kind, int countPad) \
    { pool2d<T>(x, y, g, kh, kw, sh, sw, ph, pw, kind, countPad); } \
    extern "C" __global__ void pool2d_nhwc_vec_##S(const T* x, T* y, Geo g, int kh, int kw, int sh, int sw, int ph, int pw, int kind, int countPad) \
    { pool2d_nhwc_vec<T>(x, y, g, kh, kw, sh, sw, ph, pw, kind, countPad); } \
    extern "C" __global__ void resize_##S(const T* x, T* y, Geo g, int mode) { resize<T>(x, y, g, mode); }
FOR_FLOATS(IMAGE)
