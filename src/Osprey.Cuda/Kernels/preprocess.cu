// Fused detection pre-processing over a whole batch: decoded uint8 RGB images (HWC, packed one after the
// other in one device buffer) to the network's input [N, 3, H, W] in either memory format (the output's
// strides), float32 or float16. One thread per output pixel does, for its three channels:
//   normalise each bilinear tap, v = (p / 255 - mean) / std   (float32, as the CPU Preprocessor on the host)
//   bilinear resize, align_corners=False, torch's tap rule and blend order:
//     top = (1 - a) v00 + a v01, bottom = (1 - a) v10 + a v11, out = (1 - b) top + b bottom
//   zero padding outside the image's resized size.
// Products and sums use __fmul_rn/__fadd_rn so that NVRTC does not contract them into FMAs: the results are
// those of the CPU path (host normalisation, then Op.Resize) up to division rounding, which is IEEE here too.

struct PreImage
{
    i64 offset;          // byte offset of the image's first pixel in the packed buffer
    int h, w;            // decoded size
    int rh, rw;          // resized size (the rest of the padded output is zero)
};

struct PreParams
{
    int n, oh, ow;       // batch, padded output height and width
    int pad0;
    i64 sn, sc, sh, sw;  // output strides in elements
    float mean[3];
    float std[3];
};

__device__ __forceinline__ float pre_norm(unsigned char p, float m, float s)
{
    return __fdiv_rn(__fsub_rn(__fdiv_rn((float)p, 255.f), m), s);
}

// Source taps along one axis (torch's area_pixel_compute_source_index for align_corners=False).
__device__ __forceinline__ void pre_taps(int d, int in, int out, int& i0, int& i1, float& l)
{
    float scale = __fdiv_rn((float)in, (float)out);
    float src = fmaxf(__fsub_rn(__fmul_rn(scale, __fadd_rn((float)d, 0.5f)), 0.5f), 0.f);
    i0 = (int)src;
    i1 = i0 + (i0 < in - 1 ? 1 : 0);
    l = __fsub_rn(src, (float)i0);
}

template <typename T>
__device__ void preprocess(const unsigned char* __restrict__ px, const PreImage* __restrict__ imgs, T* __restrict__ y, PreParams p)
{
    typedef Num<T> N;
    i64 total = (i64)p.n * p.oh * p.ow;
    for (i64 i = global_id(); i < total; i += grid_size())
    {
        int ox = (int)(i % p.ow);
        i64 r = i / p.ow;
        int oy = (int)(r % p.oh);
        int n = (int)(r / p.oh);
        T* out = y + n * p.sn + oy * p.sh + ox * p.sw;
        PreImage im = imgs[n];
        if (oy >= im.rh || ox >= im.rw)
        {
#pragma unroll
            for (int c = 0; c < 3; c++) out[c * p.sc] = N::from(0.f);
            continue;
        }
        int y0, y1, x0, x1;
        float b, a;
        pre_taps(oy, im.h, im.rh, y0, y1, b);
        pre_taps(ox, im.w, im.rw, x0, x1, a);
        const unsigned char* base = px + im.offset;
        const unsigned char* p00 = base + ((i64)y0 * im.w + x0) * 3;
        const unsigned char* p01 = base + ((i64)y0 * im.w + x1) * 3;
        const unsigned char* p10 = base + ((i64)y1 * im.w + x0) * 3;
        const unsigned char* p11 = base + ((i64)y1 * im.w + x1) * 3;
        float a0 = __fsub_rn(1.f, a), b0 = __fsub_rn(1.f, b);
#pragma unroll
        for (int c = 0; c < 3; c++)
        {
            float m = p.mean[c], s = p.std[c];
            float top = __fadd_rn(__fmul_rn(a0, pre_norm(p00[c], m, s)), __fmul_rn(a, pre_norm(p01[c], m, s)));
            float bottom = __fadd_rn(__fmul_rn(a0, pre_norm(p10[c], m, s)), __fmul_rn(a, pre_norm(p11[c], m, s)));
            out[c * p.sc] = N::from(__fadd_rn(__fmul_rn(b0, top), __fmul_rn(b, bottom)));
        }
    }
}

extern "C" __global__ void preprocess_f32(const unsigned char* px, const PreImage* imgs, float* y, PreParams p) { preprocess<float>(px, imgs, y, p); }
extern "C" __global__ void preprocess_f16(const unsigned char* px, const PreImage* imgs, half_t* y, PreParams p) { preprocess<half_t>(px, imgs, y, p); }
