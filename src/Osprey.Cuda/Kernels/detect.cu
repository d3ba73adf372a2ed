// Detection post-processing over a whole batch (RetinaNet and SSD), reproducing torchvision's
// postprocess_detections as Osprey's CPU post-processors do (Osprey.Detection/Boxes/PostProcess.cs, Nms.cs).
// Compiled with --fmad=false (KernelCache), so a*b+c rounds twice, as on the CPU.
//
// Candidates are 64-bit keys whose ascending order is score descending, then index ascending:
// (~sortable(score) << 32) | index. Every selection is exact under that total order.
//
// Stages (one launch each, no host synchronisation):
//   SSD:       ssd_softmax   -> probabilities, transposed to [N, C-1, A]
//              ssd_select    -> per (image, class): threshold + top-k, decode, clip (one block per segment)
//   RetinaNet: retina_chunk  -> per (image, level, chunk of 64K logits): sigmoid, threshold, chunk top-k
//              retina_merge  -> per (image, level): top-k of the chunks' keys, decode, clip
//              retina_group  -> per image: candidates sorted by (class, score desc, slot)
//   both:      image_stats   -> per image: candidate count and max coordinate (batched_nms's offset strategy)
//              nms_class     -> per (image, class): bitmask NMS in shared memory (greedy fallback above 512)
//              final_topd    -> per image: best D kept candidates, fixed-size outputs
// A candidate's slot (its position in per-image fixed-size arrays: segment * k + rank) orders candidates
// exactly as the CPU's candidate index does, so it is the tie-breaking index after selection.

#define TPB 512
#define HIST_MAX 4096
#define NMS_MAX 512
#define MAX_LEVELS 8

struct Coder { float wx, wy, ww, wh, clip; };
struct Levels { int count; int first[MAX_LEVELS]; int anchors[MAX_LEVELS]; int chunk0[MAX_LEVELS + 1]; };
// Shapes and options (Osprey.Cuda.Detection.DetectParams): A anchors, K classes, k candidates per segment, cap the
// top-k sort capacity, segs segments per image, S = segs * k candidate slots per image; logitFloor: RetinaNet logits
// at or below it cannot pass the threshold (the CPU's shortcut, same value); iouBelow: the largest float <= the
// double NMS threshold, so (double)iou > threshold <=> iou > iouBelow.
struct Params { int A; int K; int k; int cap; int segs; int S; float thr; Coder cd; float logitFloor; float iouBelow; };
// Per-image candidate slots (n * S + slot) and per-segment counts (n * segs + seg) (DetectSlots).
struct Slots { float4* box; float* score; int* label; int* count; unsigned char* kept; float* imgMax; int* imgTotal; };

__device__ __forceinline__ unsigned sortable(float s)
{
    unsigned b = __float_as_uint(s);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ u64 desc_key(float s, unsigned idx) { return ((u64)(~sortable(s)) << 32) | idx; }
__device__ __forceinline__ float key_score(u64 k)
{
    unsigned s = ~(unsigned)(k >> 32);
    return __uint_as_float((s & 0x80000000u) ? (s & 0x7fffffffu) : ~s);
}
// exp rounded once from double: correctly rounded almost always, as glibc's expf (MathF.Exp on Linux), where CUDA's
// expf may be 2 ulp off; the extra cost is small on a GPU with full-rate FP64.
__device__ __forceinline__ float exp_f(float x) { return (float)exp((double)x); }
__device__ __forceinline__ u64 low_mask(int resolved) { return resolved >= 64 ? 0ull : (~0ull >> resolved); }
// .NET's MathF.Min/Max propagate NaN; CUDA's fminf/fmaxf drop it.
__device__ __forceinline__ float min_nan(float a, float b) { return (a != a || b != b) ? qnan() : fminf(a, b); }
__device__ __forceinline__ float clamp_img(float v, float hi) { return v != v ? v : fminf(fmaxf(v, 0.0f), hi); }

// BoxCoder.DecodeOne + BoxOps.ClipToImage (operation order as the CPU).
__device__ __forceinline__ float4 decode_clip(float c0, float c1, float c2, float c3, const float* __restrict__ ref, Coder cd, float H, float W)
{
    float w = ref[2] - ref[0];
    float h = ref[3] - ref[1];
    float cx = ref[0] + 0.5f * w;
    float cy = ref[1] + 0.5f * h;
    float dx = c0 / cd.wx, dy = c1 / cd.wy;
    float dw = min_nan(c2 / cd.ww, cd.clip), dh = min_nan(c3 / cd.wh, cd.clip);
    float pcx = dx * w + cx, pcy = dy * h + cy;
    float hw = 0.5f * (exp_f(dw) * w), hh = 0.5f * (exp_f(dh) * h);
    return make_float4(clamp_img(pcx - hw, W), clamp_img(pcy - hh, H), clamp_img(pcx + hw, W), clamp_img(pcy + hh, H));
}

// ---------------------------------------------------------------- block-wide top-k

struct TopkState
{
    unsigned hist[HIST_MAX];
    unsigned wsum[33];
    int bin;
    unsigned before;
    unsigned count;
};

// Exclusive prefix of v over the block (blockDim a multiple of 32); total receives the sum.
__device__ unsigned block_excl_scan(unsigned v, unsigned* wsum, unsigned& total)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    unsigned x = v;
    for (int o = 1; o < 32; o <<= 1) { unsigned y = __shfl_up_sync(0xffffffffu, x, o); if (lane >= o) x += y; }
    if (lane == 31) wsum[warp] = x;
    __syncthreads();
    if (warp == 0)
    {
        unsigned w = lane < nw ? wsum[lane] : 0u, t = w;
        for (int o = 1; o < 32; o <<= 1) { unsigned y = __shfl_up_sync(0xffffffffu, t, o); if (lane >= o) t += y; }
        if (lane < nw) wsum[lane] = t - w;
        if (lane == 31) wsum[32] = t;
    }
    __syncthreads();
    unsigned r = wsum[warp] + x - v;
    total = wsum[32];
    __syncthreads();
    return r;
}

__device__ void bitonic_asc(u64* a, unsigned n)
{
    for (unsigned size = 2; size <= n; size <<= 1)
        for (unsigned stride = size >> 1; stride > 0; stride >>= 1)
        {
            for (unsigned i = threadIdx.x; i < n / 2; i += blockDim.x)
            {
                unsigned lo = 2 * i - (i & (stride - 1)), hi = lo + stride;
                bool up = (lo & size) == 0;
                u64 x = a[lo], y = a[hi];
                if ((x > y) == up) { a[lo] = y; a[hi] = x; }
            }
            __syncthreads();
        }
}

// The k smallest keys of src (elements 0..len-1, some absent) sorted ascending into buf[0..m), m returned.
// Radix select from the top bits (12-bit digits) narrows the candidates until those at or below the k-th
// key's bin fit in cap (a power of two >= k, <= buf's size); those are collected and bitonic-sorted.
// Keys must be distinct (they carry an index). Every thread must call it.
template <class Src>
__device__ unsigned block_topk(const Src& src, int len, unsigned k, unsigned cap, u64* buf, TopkState& st)
{
    u64 prefix = 0, upper = ~0ull;
    int resolved = 0;
    unsigned base = 0;
    for (;;)
    {
        int w = min(12, 64 - resolved), shift = 64 - resolved - w, nb = 1 << w;
        for (int i = threadIdx.x; i < nb; i += blockDim.x) st.hist[i] = 0;
        __syncthreads();
        for (int i = threadIdx.x; i < len; i += blockDim.x)
        {
            u64 key;
            if (!src.get(i, key)) continue;
            if (resolved > 0 && (key >> (64 - resolved)) != (prefix >> (64 - resolved))) continue;
            atomicAdd(&st.hist[(unsigned)(key >> shift) & (unsigned)(nb - 1)], 1u);
        }
        __syncthreads();
        int per = (nb + (int)blockDim.x - 1) / (int)blockDim.x, b0 = threadIdx.x * per, b1 = min(nb, b0 + per);
        unsigned local = 0;
        for (int b = b0; b < b1; b++) local += st.hist[b];
        unsigned total, excl = block_excl_scan(local, st.wsum, total);
        unsigned need = k - base;
        if (base + total <= cap || total <= need) { upper = prefix | low_mask(resolved); break; }
        if (excl < need && excl + local >= need)
        {
            unsigned c = excl;
            for (int b = b0; b < b1; b++)
            {
                unsigned h = st.hist[b];
                if (c + h >= need) { st.bin = b; st.before = c; break; }
                c += h;
            }
        }
        __syncthreads();
        int bin = st.bin;
        unsigned before = st.before, hb = st.hist[bin];
        __syncthreads();
        base += before;
        prefix |= (u64)bin << shift;
        resolved += w;
        if (base + hb <= cap) { upper = prefix | low_mask(resolved); break; }
    }
    if (threadIdx.x == 0) st.count = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < len; i += blockDim.x)
    {
        u64 key;
        if (src.get(i, key) && key <= upper) buf[atomicAdd(&st.count, 1u)] = key;
    }
    __syncthreads();
    unsigned cnt = st.count, n2 = 2;
    while (n2 < cnt) n2 <<= 1;
    for (unsigned i = cnt + threadIdx.x; i < n2; i += blockDim.x) buf[i] = ~0ull;
    __syncthreads();
    bitonic_asc(buf, n2);
    return min(cnt, k);
}

// ---------------------------------------------------------------- SSD

// Softmax over classes per anchor (torch's CPU order: max, exp(x - max) summed in class order, times 1/sum),
// written transposed without the background class: probsT[n, c - 1, a]. Block: anchorsPerBlock rows staged in shared memory.
template <typename T>
__device__ void ssd_softmax(const T* __restrict__ x, float* __restrict__ probsT, int A, int C, int apb)
{
    extern __shared__ float rows[];
    int n = blockIdx.y, a0 = blockIdx.x * apb, na = min(apb, A - a0);
    const T* src = x + ((i64)n * A + a0) * C;
    for (int i = threadIdx.x; i < na * C; i += blockDim.x) rows[i] = Num<T>::to(src[i]);
    __syncthreads();
    for (int r = threadIdx.x; r < na; r += blockDim.x)
    {
        const float* row = rows + r * C;
        float mx = -__int_as_float(0x7f800000);
        for (int c = 0; c < C; c++) { float v = row[c]; mx = (v != v || v > mx) ? v : mx; }
        float* e = rows + r * C;
        float sum = 0.0f;
        for (int c = 0; c < C; c++) { float v = exp_f(row[c] - mx); e[c] = v; sum += v; }
        float inv = 1.0f / sum;
        for (int c = 1; c < C; c++) probsT[((i64)n * (C - 1) + (c - 1)) * A + a0 + r] = e[c] * inv;
    }
}
extern "C" __global__ void ssd_softmax_f32(const float* x, float* p, int A, int C, int apb) { ssd_softmax<float>(x, p, A, C, apb); }
extern "C" __global__ void ssd_softmax_f16(const half_t* x, float* p, int A, int C, int apb) { ssd_softmax<half_t>(x, p, A, C, apb); }

struct ProbSrc
{
    const float* p;
    float thr;
    __device__ __forceinline__ bool get(int i, u64& key) const
    {
        float s = p[i];
        if (!(s > thr)) return false;
        key = desc_key(s, (unsigned)i);
        return true;
    }
};

// Block (class c - 1, image n): scores above the threshold, their top k, decoded and clipped into slots (c - 1) * k + r.
template <typename T>
__device__ void ssd_select(const float* __restrict__ probsT, const T* __restrict__ reg, const float* __restrict__ anchors,
    const int* __restrict__ sizes, Params P, Slots sl)
{
    extern __shared__ u64 buf[];
    __shared__ TopkState st;
    int A = P.A, k = P.k;
    Coder cd = P.cd;
    int c1 = blockIdx.x, n = blockIdx.y, seg = n * P.segs + c1;
    ProbSrc src{probsT + (i64)seg * A, P.thr};
    unsigned m = block_topk(src, A, (unsigned)k, (unsigned)P.cap, buf, st);
    float4* slotBox = sl.box;
    float* slotScore = sl.score;
    int* slotLabel = sl.label;
    float H = (float)sizes[2 * n], W = (float)sizes[2 * n + 1];
    i64 slot0 = (i64)seg * k;
    for (unsigned r = threadIdx.x; r < m; r += blockDim.x)
    {
        u64 key = buf[r];
        int a = (int)(unsigned)key;
        const T* code = reg + ((i64)n * A + a) * 4;
        slotBox[slot0 + r] = decode_clip(Num<T>::to(code[0]), Num<T>::to(code[1]), Num<T>::to(code[2]), Num<T>::to(code[3]), anchors + (i64)a * 4, cd, H, W);
        slotScore[slot0 + r] = key_score(key);
        slotLabel[slot0 + r] = c1 + 1;
    }
    if (threadIdx.x == 0) sl.count[seg] = (int)m;
}
#define SSD_SELECT(S, T) extern "C" __global__ void ssd_select_##S(const float* p, const T* reg, const float* anchors, const int* sizes, Params P, Slots sl) \
    { ssd_select<T>(p, reg, anchors, sizes, P, sl); }
SSD_SELECT(f32, float)
SSD_SELECT(f16, half_t)

// ---------------------------------------------------------------- RetinaNet

template <typename T>
struct SigmoidSrc
{
    const T* x;
    float thr, floor;
    unsigned idx0;
    __device__ __forceinline__ bool get(int i, u64& key) const
    {
        float v = Num<T>::to(x[i]);
        if (!(v > floor)) return false;
        float s = 1.0f / (1.0f + exp_f(-v));
        if (!(s > thr)) return false;
        key = desc_key(s, idx0 + (unsigned)i);
        return true;
    }
};

__device__ __forceinline__ int level_of_chunk(const Levels& lv, int j)
{
    int l = 0;
    while (l + 1 < lv.count && lv.chunk0[l + 1] <= j) l++;
    return l;
}

// Block (chunk j of the batch's per-image chunk list, image n): top k of sigmoid scores above the threshold
// among `chunk` consecutive logits of one level (index = flat position inside the level, anchor-major).
template <typename T>
__device__ void retina_chunk(const T* __restrict__ logits, Levels lv, int chunk, Params P, u64* __restrict__ chunkKeys, int* __restrict__ chunkCount)
{
    int A = P.A, K = P.K, k = P.k, cap = P.cap;
    float thr = P.thr;
    extern __shared__ u64 buf[];
    __shared__ TopkState st;
    int j = blockIdx.x, n = blockIdx.y, chunks = lv.chunk0[lv.count];
    int l = level_of_chunk(lv, j);
    i64 len = (i64)lv.anchors[l] * K, start = (i64)(j - lv.chunk0[l]) * chunk;
    int clen = (int)min((i64)chunk, len - start);
    SigmoidSrc<T> src{logits + ((i64)n * A + lv.first[l]) * K + start, thr, P.logitFloor, (unsigned)start};
    unsigned m = block_topk(src, clen, (unsigned)k, (unsigned)cap, buf, st);
    u64* out = chunkKeys + ((i64)n * chunks + j) * k;
    for (unsigned r = threadIdx.x; r < m; r += blockDim.x) out[r] = buf[r];
    if (threadIdx.x == 0) chunkCount[n * chunks + j] = (int)m;
}
extern "C" __global__ void retina_chunk_f32(const float* x, Levels lv, int chunk, Params P, u64* keys, int* counts) { retina_chunk<float>(x, lv, chunk, P, keys, counts); }
extern "C" __global__ void retina_chunk_f16(const half_t* x, Levels lv, int chunk, Params P, u64* keys, int* counts) { retina_chunk<half_t>(x, lv, chunk, P, keys, counts); }

struct ChunkSrc
{
    const u64* keys;
    const int* counts;
    int k;
    __device__ __forceinline__ bool get(int i, u64& key) const
    {
        int j = i / k, r = i - j * k;
        if (r >= counts[j]) return false;
        key = keys[i];
        return true;
    }
};

// Block (level l, image n): the level's top k over its chunks' keys, decoded and clipped into slots l * k + r.
template <typename T>
__device__ void retina_merge(const u64* __restrict__ chunkKeys, const int* __restrict__ chunkCount, Levels lv, const T* __restrict__ reg,
    const float* __restrict__ anchors, const int* __restrict__ sizes, Params P, Slots sl)
{
    int A = P.A, K = P.K, k = P.k, cap = P.cap;
    Coder cd = P.cd;
    float4* slotBox = sl.box;
    float* slotScore = sl.score;
    int* slotLabel = sl.label;
    extern __shared__ u64 buf[];
    __shared__ TopkState st;
    int l = blockIdx.x, n = blockIdx.y, chunks = lv.chunk0[lv.count];
    int c0 = lv.chunk0[l], nch = lv.chunk0[l + 1] - c0;
    ChunkSrc src{chunkKeys + ((i64)n * chunks + c0) * k, chunkCount + n * chunks + c0, k};
    unsigned m = block_topk(src, nch * k, (unsigned)k, (unsigned)cap, buf, st);
    float H = (float)sizes[2 * n], W = (float)sizes[2 * n + 1];
    int seg = n * lv.count + l;
    i64 slot0 = (i64)seg * k;
    for (unsigned r = threadIdx.x; r < m; r += blockDim.x)
    {
        u64 key = buf[r];
        unsigned flat = (unsigned)key;
        int a = lv.first[l] + (int)(flat / (unsigned)K);
        const T* code = reg + ((i64)n * A + a) * 4;
        slotBox[slot0 + r] = decode_clip(Num<T>::to(code[0]), Num<T>::to(code[1]), Num<T>::to(code[2]), Num<T>::to(code[3]), anchors + (i64)a * 4, cd, H, W);
        slotScore[slot0 + r] = key_score(key);
        slotLabel[slot0 + r] = (int)(flat % (unsigned)K);
    }
    if (threadIdx.x == 0) sl.count[seg] = (int)m;
}
#define RETINA_MERGE(S, T) extern "C" __global__ void retina_merge_##S(const u64* keys, const int* counts, Levels lv, const T* reg, const float* anchors, const int* sizes, Params P, Slots sl) \
    { retina_merge<T>(keys, counts, lv, reg, anchors, sizes, P, sl); }
RETINA_MERGE(f32, float)
RETINA_MERGE(f16, half_t)

// Block n: the image's candidates (segs segments of up to k) sorted by (class, score desc, slot); per class the
// range [grpStart, grpEnd) of grpSlot. Needs segs * k <= 8192 (13-bit slots) and sorts nextpow2 <= that in shared memory.
extern "C" __global__ void retina_group(Params P, Slots sl, int* __restrict__ grpSlot, int* __restrict__ grpStart, int* __restrict__ grpEnd)
{
    const float* slotScore = sl.score;
    const int* slotLabel = sl.label;
    const int* segCount = sl.count;
    int segs = P.segs, k = P.k, K = P.K;
    extern __shared__ u64 keys[];
    __shared__ unsigned count;
    int n = blockIdx.x, S = segs * k;
    if (threadIdx.x == 0) count = 0;
    for (int c = threadIdx.x; c < K; c += blockDim.x) { grpStart[n * K + c] = 0; grpEnd[n * K + c] = 0; }
    __syncthreads();
    for (int s = threadIdx.x; s < S; s += blockDim.x)
    {
        int seg = s / k;
        if (s - seg * k >= segCount[n * segs + seg]) continue;
        i64 slot = (i64)n * S + s;
        keys[atomicAdd(&count, 1u)] = ((u64)slotLabel[slot] << 45) | ((u64)(~sortable(slotScore[slot])) << 13) | (u64)s;
    }
    __syncthreads();
    unsigned cnt = count, n2 = 2;
    while (n2 < cnt) n2 <<= 1;
    for (unsigned i = cnt + threadIdx.x; i < n2; i += blockDim.x) keys[i] = ~0ull;
    __syncthreads();
    bitonic_asc(keys, n2);
    for (unsigned i = threadIdx.x; i < cnt; i += blockDim.x)
    {
        u64 key = keys[i];
        int label = (int)(key >> 45);
        grpSlot[(i64)n * S + i] = (int)(key & 0x1fffu);
        if (i == 0 || (int)(keys[i - 1] >> 45) != label) grpStart[n * K + label] = (int)i;
        if (i + 1 == cnt || (int)(keys[i + 1] >> 45) != label) grpEnd[n * K + label] = (int)i + 1;
    }
}

// Block n: how many candidates the image has and the largest coordinate among them (NaN if any is NaN), as
// batched_nms's coordinate-offset strategy needs.
extern "C" __global__ void image_stats(Params P, Slots sl)
{
    const float4* slotBox = sl.box;
    const int* segCount = sl.count;
    int segs = P.segs, k = P.k;
    __shared__ float smax[32];
    __shared__ int scount[32];
    int n = blockIdx.x, S = segs * k;
    float mx = -__int_as_float(0x7f800000);
    int total = 0;
    for (int s = threadIdx.x; s < S; s += blockDim.x)
    {
        int seg = s / k, c = segCount[n * segs + seg];
        if (s - seg * k >= c) continue;
        if (s - seg * k == 0) total += c;
        float4 b = slotBox[(i64)n * S + s];
        float v[4] = {b.x, b.y, b.z, b.w};
        for (int q = 0; q < 4; q++) mx = (mx != mx || v[q] != v[q]) ? qnan() : fmaxf(mx, v[q]);
    }
    for (int o = 16; o > 0; o >>= 1)
    {
        float om = __shfl_xor_sync(0xffffffffu, mx, o);
        mx = (mx != mx || om != om) ? qnan() : fmaxf(mx, om);
        total += __shfl_xor_sync(0xffffffffu, total, o);
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { smax[warp] = mx; scount[warp] = total; }
    __syncthreads();
    if (threadIdx.x == 0)
    {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++) { float om = smax[w]; mx = (mx != mx || om != om) ? qnan() : fmaxf(mx, om); total += scount[w]; }
        sl.imgMax[n] = mx;
        sl.imgTotal[n] = total;
    }
}

// torchvision nms's IoU in float32, compared in double against the threshold (as the CPU).
// iouBelow is the largest float <= the double threshold; a zero (or NaN) intersection never suppresses.
__device__ __forceinline__ bool suppresses(float4 a, float4 b, float iouBelow)
{
    float w = fmaxf(0.0f, fminf(a.z, b.z) - fmaxf(a.x, b.x));
    float h = fmaxf(0.0f, fminf(a.w, b.w) - fmaxf(a.y, b.y));
    float inter = w * h;
    if (!(inter > 0.0f)) return false;
    float area = (a.z - a.x) * (a.w - a.y);
    float ovr = inter / (area + (b.z - b.x) * (b.w - b.y) - inter);
    return ovr > iouBelow;
}

// Block (class group g, image n): greedy NMS over the group's candidates in (score desc, slot) order; kept[slot] = 0/1.
// Groups are SSD segments (grpSlot null: slots g * k + i) or RetinaNet classes (grpSlot, grpStart, grpEnd).
// At most `offsetLimit` candidates in the image: boxes shifted by label * (max + 1) first, as batched_nms does then.
extern "C" __global__ void nms_class(Params P, Slots sl, const int* __restrict__ grpSlot, const int* __restrict__ grpStart, const int* __restrict__ grpEnd,
    int G, int offsetLimit)
{
    const float4* slotBox = sl.box;
    const int* slotLabel = sl.label;
    const int* segCount = sl.count;
    unsigned char* kept = sl.kept;
    int S = P.S, k = P.k;
    __shared__ float4 sb[NMS_MAX];
    __shared__ int ss[NMS_MAX];
    __shared__ u64 mask[NMS_MAX * (NMS_MAX / 64)];
    int g = blockIdx.x, n = blockIdx.y;
    int cnt, first;
    if (grpSlot) { first = grpStart[n * G + g]; cnt = grpEnd[n * G + g] - first; }
    else { first = g * k; cnt = segCount[n * G + g]; }
    if (cnt <= 0) return;
    bool offset = sl.imgTotal[n] <= offsetLimit;
    float step = sl.imgMax[n] + 1.0f;
    const float4* boxes = slotBox + (i64)n * S;
    unsigned char* keep = kept + (i64)n * S;
    if (cnt <= NMS_MAX)
    {
        for (int i = threadIdx.x; i < cnt; i += blockDim.x)
        {
            int s = grpSlot ? grpSlot[(i64)n * S + first + i] : first + i;
            float4 b = boxes[s];
            if (offset)
            {
                float off = (float)slotLabel[(i64)n * S + s] * step;
                b.x = b.x + off; b.y = b.y + off; b.z = b.z + off; b.w = b.w + off;
            }
            sb[i] = b;
            ss[i] = s;
        }
        __syncthreads();
        // one warp per row i, lanes over columns j > i, bits gathered by ballot (warp-uniform loops, no bank conflicts)
        int W = (cnt + 63) / 64, lane = threadIdx.x & 31;
        for (int i = threadIdx.x >> 5; i < cnt; i += blockDim.x >> 5)
        {
            float4 a = sb[i];
            for (int w = 0; w < W; w++)
            {
                int j0 = w * 64;
                if (j0 + 63 <= i) { if (lane == 0) mask[i * W + w] = 0; continue; }
                int ja = j0 + lane, jb = ja + 32;
                bool lo = ja > i && ja < cnt && suppresses(a, sb[ja], P.iouBelow);
                bool hi = jb > i && jb < cnt && suppresses(a, sb[jb], P.iouBelow);
                unsigned blo = __ballot_sync(0xffffffffu, lo), bhi = __ballot_sync(0xffffffffu, hi);
                if (lane == 0) mask[i * W + w] = ((u64)bhi << 32) | blo;
            }
        }
        __syncthreads();
        if (threadIdx.x < 32)
        {
            u64 removed = 0;
            for (int i = 0; i < cnt; i++)
            {
                u64 word = __shfl_sync(0xffffffffu, removed, i >> 6);
                bool gone = (word >> (i & 63)) & 1ull;
                if (!gone && lane < W) removed |= mask[i * W + lane];
                if (lane == 0) keep[ss[i]] = gone ? 0 : 1;
            }
        }
        return;
    }
    // more than NMS_MAX in one class: block-wide greedy loop over global memory
    for (int i = threadIdx.x; i < cnt; i += blockDim.x) keep[grpSlot ? grpSlot[(i64)n * S + first + i] : first + i] = 1;
    __syncthreads();
    for (int i = 0; i < cnt; i++)
    {
        int si = grpSlot ? grpSlot[(i64)n * S + first + i] : first + i;
        bool alive = keep[si] != 0;
        __syncthreads();
        if (alive)
        {
            float4 a = boxes[si];
            float offA = offset ? (float)slotLabel[(i64)n * S + si] * step : 0.0f;
            if (offset) { a.x = a.x + offA; a.y = a.y + offA; a.z = a.z + offA; a.w = a.w + offA; }
            for (int j = i + 1 + threadIdx.x; j < cnt; j += blockDim.x)
            {
                int sj = grpSlot ? grpSlot[(i64)n * S + first + j] : first + j;
                if (!keep[sj]) continue;
                float4 b = boxes[sj];
                if (offset) { float o = (float)slotLabel[(i64)n * S + sj] * step; b.x = b.x + o; b.y = b.y + o; b.z = b.z + o; b.w = b.w + o; }
                if (suppresses(a, b, P.iouBelow)) keep[sj] = 0;
            }
        }
        __syncthreads();
    }
}

struct KeptSrc
{
    const float* score;
    const unsigned char* kept;
    const int* segCount;
    int k;
    __device__ __forceinline__ bool get(int i, u64& key) const
    {
        int seg = i / k;
        if (i - seg * k >= segCount[seg] || !kept[i]) return false;
        key = desc_key(score[i], (unsigned)i);
        return true;
    }
};

// Block n: the best D kept candidates by (score desc, slot). Fixed-size outputs (rows past the count: zero box,
// score 0, label -1), and the same values packed as [counts N | boxes N*D*4 | scores N*D | labels N*D] for one download.
extern "C" __global__ void final_topd(Params P, Slots sl, int D, int cap, int N,
    int* __restrict__ outCount, float4* __restrict__ outBox, float* __restrict__ outScore, int* __restrict__ outLabel, int* __restrict__ packed)
{
    const float4* slotBox = sl.box;
    const float* slotScore = sl.score;
    const int* slotLabel = sl.label;
    const int* segCount = sl.count;
    const unsigned char* kept = sl.kept;
    int segs = P.segs, k = P.k;
    extern __shared__ u64 buf[];
    __shared__ TopkState st;
    int n = blockIdx.x, S = segs * k;
    KeptSrc src{slotScore + (i64)n * S, kept + (i64)n * S, segCount + n * segs, k};
    unsigned m = block_topk(src, S, (unsigned)D, (unsigned)cap, buf, st);
    float* pBox = (float*)(packed + N);
    float* pScore = (float*)(packed + N + (i64)N * D * 4);
    int* pLabel = packed + N + (i64)N * D * 5;
    for (int r = threadIdx.x; r < D; r += blockDim.x)
    {
        float4 b = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        float s = 0.0f;
        int lab = -1;
        if (r < (int)m)
        {
            int slot = (int)(unsigned)buf[r];
            b = slotBox[(i64)n * S + slot];
            s = slotScore[(i64)n * S + slot];
            lab = slotLabel[(i64)n * S + slot];
        }
        i64 o = (i64)n * D + r;
        outBox[o] = b; outScore[o] = s; outLabel[o] = lab;
        pBox[4 * o] = b.x; pBox[4 * o + 1] = b.y; pBox[4 * o + 2] = b.z; pBox[4 * o + 3] = b.w;
        pScore[o] = s; pLabel[o] = lab;
    }
    if (threadIdx.x == 0) { outCount[n] = (int)m; packed[n] = (int)m; }
}
