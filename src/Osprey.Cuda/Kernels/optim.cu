// Multi-tensor optimiser step (Osprey.Cuda.Training.OptimizerKernels; the host side is Osprey.Detection's
// MultiTensorStep). Every parameter is an entry of a table; the grid is a list of chunks (entry, chunk index), each block
// one chunk of OPT_CHUNK elements of one parameter. Three launches per step, whatever the parameter count:
//   optim_sumsq     per-chunk sums of squares of the gradients (float32, one partial per block)
//   optim_finalize  one block: the partials summed in float64 in a fixed order -> found-inf flag, global norm, clip
//                   coefficient and the factor (unscale x clip) the update applies; all stay on the device
//   optim_sgd/adamw the update: g = grad (any float dtype) x factor; the torch.optim formula on the FP32 value; the
//                   master (or the float32 parameter) written, 16-bit parameters receive it rounded (channels-last ones at
//                   their permuted offset). A step whose status says found-inf does nothing.
// The arithmetic is the per-tensor Op sequence's (Optim/Sgd.cs, AdamW.cs): every product and sum rounded on its own
// (__fmul_rn/__fadd_rn, never contracted into an FMA), scalars rounded to float32 first, IEEE sqrt and division, NaN-
// propagating max; so the update of one element equals the op-by-op result bit for bit for the same factor.

#define OPT_CHUNK 8192
#define OPT_THREADS 256

// Osprey.Cuda.Training.OptEntry (64 bytes)
struct OptEntry
{
    u64 param;   // the parameter's data (float32 ones are their own master)
    u64 grad;    // its gradient, contiguous
    i64 flat;    // first element of its slice of the flat state buffers (masters, momentum, exp_avg, ...)
    i64 numel;
    int pdt;     // parameter dtype: 0 float32, 1 float16, 2 bfloat16
    int gdt;     // gradient dtype, same codes
    int nhwc;    // 1: a channels-last [N, C, H, W] parameter (state and gradient are in NCHW order)
    int c;
    int hw;
    int fresh;   // SGD: the momentum buffer is unwritten (this step sets it to d, as torch's first step)
    int pad0, pad1;
};

struct OptChunk { int entry; int chunk; };

// Osprey.Cuda.Training.OptStatus (24 bytes)
struct OptStatus
{
    double norm;    // global gradient norm (unscaled), NaN when not computed
    float factor;   // what the update multiplies each gradient by: (float)(inverse scale x clip coefficient)
    int foundInf;   // 1: some gradient holds an inf or NaN (amp: the step is skipped)
    double sumsq;   // sum of squares of the (scaled) gradients
};

// Osprey.Cuda.Training.OptHyper
struct OptHyper
{
    float lr, wd, momentum, damp1;          // SGD: lr, weight decay, momentum, 1 - dampening
    int nesterov;
    float decay;                            // AdamW: 1 - lr wd
    float b1, omb1, b2, omb2, bc2, eps, stepSize;  // AdamW: betas, 1 - betas, sqrt(1 - b2^t), eps, lr / (1 - b1^t)
    int hasDecay, amsgrad, skipOnInf;
};

__device__ __forceinline__ bool opt_finite(float v) { return (__float_as_uint(v) & 0x7f800000u) != 0x7f800000u; }
__device__ __forceinline__ bool opt_finite(double v) { return (__double_as_longlong(v) & 0x7ff0000000000000LL) != 0x7ff0000000000000LL; }

__device__ __forceinline__ float opt_load(u64 base, int dt, i64 i)
{
    if (dt == 1) return h2f(((const unsigned short*)base)[i]);
    if (dt == 2) return b2f(((const unsigned short*)base)[i]);
    return ((const float*)base)[i];
}

__device__ __forceinline__ i64 opt_param_index(const OptEntry& e, i64 i)
{
    if (!e.nhwc) return i;
    i64 chw = (i64)e.c * e.hw;
    i64 n = i / chw;
    i64 r = i - n * chw;
    i64 c = r / e.hw;
    i64 hw = r - c * e.hw;
    return n * chw + hw * e.c + c;
}

__device__ __forceinline__ float opt_master(const OptEntry& e, const float* masters, i64 i)
{
    return e.pdt == 0 ? ((const float*)e.param)[i] : masters[e.flat + i];
}

__device__ __forceinline__ void opt_store(const OptEntry& e, float* masters, i64 i, float v)
{
    if (e.pdt == 0) { ((float*)e.param)[i] = v; return; }
    masters[e.flat + i] = v;
    i64 j = opt_param_index(e, i);
    ((unsigned short*)e.param)[j] = e.pdt == 1 ? f2h(v) : f2b(v);
}

extern "C" __global__ void optim_sumsq(const OptEntry* __restrict__ entries, const OptChunk* __restrict__ chunks, float* __restrict__ partials)
{
    __shared__ float s[OPT_THREADS];
    OptChunk k = chunks[blockIdx.x];
    const OptEntry e = entries[k.entry];
    i64 start = (i64)k.chunk * OPT_CHUNK;
    i64 end = start + OPT_CHUNK < e.numel ? start + OPT_CHUNK : e.numel;
    float acc = 0.f;
    for (i64 i = start + threadIdx.x; i < end; i += blockDim.x)
    {
        float g = opt_load(e.grad, e.gdt, i);
        acc = __fadd_rn(acc, __fmul_rn(g, g));
    }
    s[threadIdx.x] = acc;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h >>= 1)
    {
        if (threadIdx.x < h) s[threadIdx.x] = __fadd_rn(s[threadIdx.x], s[threadIdx.x + h]);
        __syncthreads();
    }
    if (threadIdx.x == 0) partials[blockIdx.x] = s[0];
}

// One block of OPT_THREADS threads. inv: the float32 reciprocal of the loss scale (1 without scaling); clip <= 0: no clipping.
extern "C" __global__ void optim_finalize(const float* __restrict__ partials, int count, float inv, double clip, int checkFinite, OptStatus* status)
{
    __shared__ double s[OPT_THREADS];
    __shared__ int bad[OPT_THREADS];
    double acc = 0;
    int b = 0;
    for (int i = threadIdx.x; i < count; i += blockDim.x)
    {
        float p = partials[i];
        if (!opt_finite(p)) b = 1;
        acc += (double)p;
    }
    s[threadIdx.x] = acc;
    bad[threadIdx.x] = b;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h >>= 1)
    {
        if (threadIdx.x < h) { s[threadIdx.x] += s[threadIdx.x + h]; bad[threadIdx.x] |= bad[threadIdx.x + h]; }
        __syncthreads();
    }
    if (threadIdx.x != 0) return;
    double total = s[0];
    int found = checkFinite && (bad[0] || !opt_finite(total));
    double norm = __longlong_as_double(0x7ff8000000000000LL);
    double coef = 1.0;
    if (clip > 0)
    {
        // torch's clip_grad_norm_ on the unscaled gradients; Math.Min(1, NaN) is NaN, as the host path
        norm = __dsqrt_rn(total) * (double)inv;
        double q = clip / (norm + 1e-6);
        coef = (q != q) ? q : (q < 1.0 ? q : 1.0);
    }
    status->norm = norm;
    status->factor = (float)((double)inv * coef);
    status->foundInf = found;
    status->sumsq = total;
}

extern "C" __global__ void optim_sgd(const OptEntry* __restrict__ entries, const OptChunk* __restrict__ chunks, float* masters,
    float* momentum, const OptStatus* status, OptHyper h)
{
    float factor = 1.f;
    if (status)
    {
        if (h.skipOnInf && status->foundInf) return;
        factor = status->factor;
    }
    OptChunk k = chunks[blockIdx.x];
    const OptEntry e = entries[k.entry];
    i64 start = (i64)k.chunk * OPT_CHUNK;
    i64 end = start + OPT_CHUNK < e.numel ? start + OPT_CHUNK : e.numel;
    for (i64 i = start + threadIdx.x; i < end; i += blockDim.x)
    {
        float g = opt_load(e.grad, e.gdt, i);
        if (status) g = __fmul_rn(g, factor);
        float p = opt_master(e, masters, i);
        float d = h.wd != 0.f ? __fadd_rn(g, __fmul_rn(p, h.wd)) : g;
        if (h.momentum != 0.f)
        {
            i64 q = e.flat + i;
            float buf = e.fresh ? d : __fadd_rn(__fmul_rn(momentum[q], h.momentum), __fmul_rn(d, h.damp1));
            momentum[q] = buf;
            d = h.nesterov ? __fadd_rn(d, __fmul_rn(buf, h.momentum)) : buf;
        }
        opt_store(e, masters, i, __fsub_rn(p, __fmul_rn(d, h.lr)));
    }
}

extern "C" __global__ void optim_adamw(const OptEntry* __restrict__ entries, const OptChunk* __restrict__ chunks, float* masters,
    float* expAvg, float* expAvgSq, float* maxExpAvgSq, const OptStatus* status, OptHyper h)
{
    float factor = 1.f;
    if (status)
    {
        if (h.skipOnInf && status->foundInf) return;
        factor = status->factor;
    }
    OptChunk k = chunks[blockIdx.x];
    const OptEntry e = entries[k.entry];
    i64 start = (i64)k.chunk * OPT_CHUNK;
    i64 end = start + OPT_CHUNK < e.numel ? start + OPT_CHUNK : e.numel;
    for (i64 i = start + threadIdx.x; i < end; i += blockDim.x)
    {
        float g = opt_load(e.grad, e.gdt, i);
        if (status) g = __fmul_rn(g, factor);
        float p = opt_master(e, masters, i);
        if (h.hasDecay) p = __fmul_rn(p, h.decay);
        i64 q = e.flat + i;
        float m = __fadd_rn(__fmul_rn(expAvg[q], h.b1), __fmul_rn(g, h.omb1));
        float v = __fadd_rn(__fmul_rn(expAvgSq[q], h.b2), __fmul_rn(__fmul_rn(g, g), h.omb2));
        expAvg[q] = m;
        expAvgSq[q] = v;
        if (h.amsgrad)
        {
            float old = maxExpAvgSq[q];
            v = (is_nan(old) || is_nan(v)) ? qnan() : fmaxf(old, v);
            maxExpAvgSq[q] = v;
        }
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), h.bc2), h.eps);
        opt_store(e, masters, i, __fsub_rn(p, __fmul_rn(__fdiv_rn(m, denom), h.stepSize)));
    }
}
