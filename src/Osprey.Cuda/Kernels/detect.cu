// Detection post-processing over a whole batch (RetinaNet and SSD), reproducing torchvision's
// postprocess_detections as Osprey's CPU post-processors do (Osprey.Detection/Boxes/PostProcess.cs, Nms.cs).
// Compiled with --fmad=false (KernelCache), so a*b+c rounds twice, as on the CPU.
//
// Candidates are 64-bit keys whose ascending order is score descending, then index ascending:
// (~sortable(score) << 32) | index. Every selection is exact under that total order.
//
// Stages (one launch each, no host synchronisation):
// Three families share them, parameterised by Coder.coding, Params.reverse/iouPlus/keepBelow and Levels.odtk:
// torchvision (RetinaNet, SSD), NVIDIA ODTK RetinaNet (Osprey.Detection/Boxes/NvidiaPostProcess.cs OdtkPostProcessor)
// and NVIDIA DLE SSD300 (NvidiaSsdPostProcessor).
//   SSD:       ssd_softmax   -> probabilities; those above the threshold as keys in per-(image, class) lists
//              ssd_select    -> per (image, class): top-k of its list, decode, clip (one block per segment)
//   RetinaNet: retina_chunk  -> per (image, level, chunk of 64K logits): sigmoid, threshold, chunk top-k
//              retina_merge  -> per (image, level): top-k of the chunks' keys, decode, clip
//              retina_group  -> per image: candidates sorted by (class, score desc, slot)
//   both:      image_stats   -> per image: candidate count, max coordinate (batched_nms's offset strategy) and the
//                               score of the M-th best candidate (the NMS prefix bound)
//              nms_class     -> per (image, class): bitmask NMS in shared memory (greedy fallback above 512), first
//                               only over the candidates scoring at least the bound (pass 0), then in full for
//                               images where that kept fewer than D (pass 1; see nms_class)
//              final_topd    -> per image: best D kept candidates, fixed-size outputs
// A candidate's slot (its position in per-image fixed-size arrays: segment * k + rank) orders candidates
// exactly as the CPU's candidate index does, so it is the tie-breaking index after selection.

#define TPB 512
#define HIST_MAX 4096
#define NMS_MAX 512
#define MAX_LEVELS 8

// coding: 0 torchvision (corners, clipped to the image), 1 ODTK (inclusive corners, clamped to the level's bounds),
// 2 DLE centre-size (no clipping); as BoxCoder.DecodeOne.
struct Coder { float wx, wy, ww, wh, clip; int coding; };
// odtk: candidate index = ODTK's ((a * K + c) * H + y) * W + x (gridH/gridW/perLoc per level), boxes clamped to [0, maxX/maxY].
struct Levels
{
    int count; int first[MAX_LEVELS]; int anchors[MAX_LEVELS]; int chunk0[MAX_LEVELS + 1];
    int odtk; int perLoc; int gridH[MAX_LEVELS]; int gridW[MAX_LEVELS]; float maxX[MAX_LEVELS]; float maxY[MAX_LEVELS];
};
// Shapes and options (Osprey.Cuda.Detection.DetectParams): A anchors, K classes, k candidates per segment, cap the
// top-k sort capacity, segs segments per image, S = segs * k candidate slots per image; logitFloor: RetinaNet logits
// at or below it cannot pass the threshold (the CPU's shortcut, same value); iouBelow: the IoU threshold as a float
// (torchvision: the largest float <= the double threshold, so (double)iou > threshold <=> iou > iouBelow; ODTK and DLE
// compare in float32); iouPlus: 1 for ODTK's +1 pixel widths, else 0; keepBelow: DLE's rule (a box survives only while
// iou < iouBelow, NaN suppresses), else suppressed when iou > iouBelow; reverse: equal scores put the higher index first
// (DLE); prefixM: candidates per image in the first NMS pass (see nms_class).
struct Params { int A; int K; int k; int cap; int segs; int S; float thr; Coder cd; float logitFloor; float iouBelow;
                float iouPlus; int keepBelow; int reverse; int prefixM; };
// Per-image candidate slots (n * S + slot) and per-segment counts (n * segs + seg), per-image stats (DetectSlots).
struct Slots { float4* box; float* score; int* label; int* count; unsigned char* kept; float* imgMax; int* imgTotal; float* imgBound; int* imgKept; };

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

// BoxCoder.DecodeOne + the family's clipping (operation order as the CPU): torchvision BoxOps.ClipToImage to [0, W] x [0, H];
// ODTK clamps to [0, W] x [0, H] with W, H its level bounds (grid * stride - 1); DLE does not clip.
__device__ __forceinline__ float4 decode_clip(float c0, float c1, float c2, float c3, const float* __restrict__ ref, Coder cd, float H, float W)
{
    if (cd.coding == 2)
    {
        float pcx = c0 * (1.0f / cd.wx) * ref[2] + ref[0], pcy = c1 * (1.0f / cd.wy) * ref[3] + ref[1];
        float pw = exp_f(min_nan(c2 * (1.0f / cd.ww), cd.clip)) * ref[2], ph = exp_f(min_nan(c3 * (1.0f / cd.wh), cd.clip)) * ref[3];
        return make_float4(pcx - 0.5f * pw, pcy - 0.5f * ph, pcx + 0.5f * pw, pcy + 0.5f * ph);
    }
    if (cd.coding == 1)
    {
        float w = ref[2] - ref[0] + 1.0f, h = ref[3] - ref[1] + 1.0f;
        float cx = ref[0] + 0.5f * w, cy = ref[1] + 0.5f * h;
        float pcx = c0 / cd.wx * w + cx, pcy = c1 / cd.wy * h + cy;
        float pw = exp_f(min_nan(c2 / cd.ww, cd.clip)) * w, ph = exp_f(min_nan(c3 / cd.wh, cd.clip)) * h;
        return make_float4(clamp_img(pcx - 0.5f * pw, W), clamp_img(pcy - 0.5f * ph, H), clamp_img(pcx + 0.5f * pw - 1.0f, W), clamp_img(pcy + 0.5f * ph - 1.0f, H));
    }
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

// Softmax over classes per anchor (torch's CPU order: max, exp(x - max) summed in class order, times 1/sum). Block: apb
// rows staged in shared memory (rows, then apb maxima and apb reciprocals). The exps (double precision, the costly part)
// run one per thread over all of the block's elements; only the maximum and the ordered sum run one thread per row.
// Foreground probabilities above thr are appended as keys (index a, or A - 1 - a with rev) to their (image, class) list:
// cand[(n * (C - 1) + c - 1) * A + j], j < candCount[n * (C - 1) + c - 1] (zeroed before the launch). A list's order
// is arbitrary (one atomic per warp and class); ssd_select's keys carry the index, so its selection is exact.
template <typename T>
__device__ void ssd_softmax(const T* __restrict__ x, u64* __restrict__ cand, int* __restrict__ candCount, int A, int C, int apb, float thr, int rev)
{
    extern __shared__ float rows[];
    float* rmax = rows + apb * C;
    float* rinv = rmax + apb;
    int n = blockIdx.y, a0 = blockIdx.x * apb, na = min(apb, A - a0), len = na * C;
    const T* src = x + ((i64)n * A + a0) * C;
    for (int i = threadIdx.x; i < len; i += blockDim.x) rows[i] = Num<T>::to(src[i]);
    __syncthreads();
    for (int r = threadIdx.x; r < na; r += blockDim.x)
    {
        const float* row = rows + r * C;
        float mx = -__int_as_float(0x7f800000);
        for (int c = 0; c < C; c++) { float v = row[c]; mx = (v != v || v > mx) ? v : mx; }
        rmax[r] = mx;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < len; i += blockDim.x) rows[i] = exp_f(rows[i] - rmax[i / C]);
    __syncthreads();
    for (int r = threadIdx.x; r < na; r += blockDim.x)
    {
        const float* e = rows + r * C;
        float sum = 0.0f;
        for (int c = 0; c < C; c++) sum += e[c];
        rinv[r] = 1.0f / sum;
    }
    __syncthreads();
    int total = na * (C - 1), lane = threadIdx.x & 31, seg0 = n * (C - 1);
    for (int i0 = 0; i0 < total; i0 += blockDim.x)
    {
        int i = i0 + threadIdx.x;
        bool valid = i < total;
        int c1 = valid ? i / na : -1, r = valid ? i - c1 * na : 0;
        float p = valid ? rows[r * C + c1 + 1] * rinv[r] : 0.0f;
        bool pass = valid && p > thr;
        unsigned passing = __ballot_sync(0xffffffffu, pass);
        if (passing == 0) continue;
        unsigned grp = __match_any_sync(0xffffffffu, c1) & passing;
        int leader = pass ? __ffs(grp) - 1 : lane;
        int base = 0;
        if (pass && lane == leader) base = atomicAdd(&candCount[seg0 + c1], __popc(grp));
        base = __shfl_sync(0xffffffffu, base, leader);
        if (pass)
        {
            unsigned a = (unsigned)(a0 + r);
            cand[(i64)(seg0 + c1) * A + base + __popc(grp & ((1u << lane) - 1u))] = desc_key(p, rev ? (unsigned)(A - 1) - a : a);
        }
    }
}
extern "C" __global__ void ssd_softmax_f32(const float* x, u64* cand, int* candCount, int A, int C, int apb, float thr, int rev)
    { ssd_softmax<float>(x, cand, candCount, A, C, apb, thr, rev); }
extern "C" __global__ void ssd_softmax_f16(const half_t* x, u64* cand, int* candCount, int A, int C, int apb, float thr, int rev)
    { ssd_softmax<half_t>(x, cand, candCount, A, C, apb, thr, rev); }

// A (image, class) candidate list of ssd_softmax (keys already above the threshold).
struct CandSrc
{
    const u64* keys;
    __device__ __forceinline__ bool get(int i, u64& key) const { key = keys[i]; return true; }
};

// Block (class c - 1, image n): the top k of the class's candidates (scores above the threshold), decoded and clipped
// into slots (c - 1) * k + r. Equal scores: lower anchor first, or higher with P.reverse (the key index, see ssd_softmax).
template <typename T>
__device__ void ssd_select(const u64* __restrict__ cand, const int* __restrict__ candCount, const T* __restrict__ reg, const float* __restrict__ anchors,
    const int* __restrict__ sizes, Params P, Slots sl)
{
    extern __shared__ u64 buf[];
    __shared__ TopkState st;
    int A = P.A, k = P.k;
    Coder cd = P.cd;
    int c1 = blockIdx.x, n = blockIdx.y, seg = n * P.segs + c1;
    CandSrc src{cand + (i64)seg * A};
    unsigned m = block_topk(src, candCount[seg], (unsigned)k, (unsigned)P.cap, buf, st);
    float4* slotBox = sl.box;
    float* slotScore = sl.score;
    int* slotLabel = sl.label;
    float H = (float)sizes[2 * n], W = (float)sizes[2 * n + 1];
    i64 slot0 = (i64)seg * k;
    for (unsigned r = threadIdx.x; r < m; r += blockDim.x)
    {
        u64 key = buf[r];
        int a = P.reverse ? A - 1 - (int)(unsigned)key : (int)(unsigned)key;
        const T* code = reg + ((i64)n * A + a) * 4;
        slotBox[slot0 + r] = decode_clip(Num<T>::to(code[0]), Num<T>::to(code[1]), Num<T>::to(code[2]), Num<T>::to(code[3]), anchors + (i64)a * 4, cd, H, W);
        slotScore[slot0 + r] = key_score(key);
        slotLabel[slot0 + r] = c1 + 1;
    }
    if (threadIdx.x == 0) sl.count[seg] = (int)m;
}
#define SSD_SELECT(S, T) extern "C" __global__ void ssd_select_##S(const u64* cand, const int* candCount, const T* reg, const float* anchors, const int* sizes, Params P, Slots sl) \
    { ssd_select<T>(cand, candCount, reg, anchors, sizes, P, sl); }
SSD_SELECT(f32, float)
SSD_SELECT(f16, half_t)

// ---------------------------------------------------------------- RetinaNet

// Osprey's flat index inside a level, ((y * W + x) * A + a) * K + c, as ODTK's ((a * K + c) * H + y) * W + x.
__device__ __forceinline__ unsigned odtk_index(unsigned i, unsigned K, unsigned A, unsigned H, unsigned W)
{
    unsigned c = i % K, rest = i / K, a = rest % A, loc = rest / A;
    return ((a * K + c) * H + loc / W) * W + loc % W;
}

template <typename T>
struct SigmoidSrc
{
    const T* x;
    float thr, floor;
    unsigned idx0;
    int odtk;
    unsigned K, A, H, W;
    __device__ __forceinline__ bool get(int i, u64& key) const
    {
        float v = Num<T>::to(x[i]);
        if (!(v > floor)) return false;
        float s = 1.0f / (1.0f + exp_f(-v));
        if (!(s > thr)) return false;
        unsigned flat = idx0 + (unsigned)i;
        key = desc_key(s, odtk ? odtk_index(flat, K, A, H, W) : flat);
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
    SigmoidSrc<T> src{logits + ((i64)n * A + lv.first[l]) * K + start, thr, P.logitFloor, (unsigned)start, lv.odtk,
        (unsigned)K, (unsigned)lv.perLoc, (unsigned)lv.gridH[l], (unsigned)lv.gridW[l]};
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
    float H = lv.odtk ? lv.maxY[l] : (float)sizes[2 * n], W = lv.odtk ? lv.maxX[l] : (float)sizes[2 * n + 1];
    unsigned gh = (unsigned)lv.gridH[l], gw = (unsigned)lv.gridW[l];
    int seg = n * lv.count + l;
    i64 slot0 = (i64)seg * k;
    for (unsigned r = threadIdx.x; r < m; r += blockDim.x)
    {
        u64 key = buf[r];
        unsigned flat = (unsigned)key;
        int a, c;
        if (lv.odtk)
        {
            unsigned hw = gh * gw;
            c = (int)(flat / hw % (unsigned)K);
            a = lv.first[l] + (int)(((flat / gw % gh) * gw + flat % gw) * (unsigned)lv.perLoc + flat / hw / (unsigned)K);
        }
        else { a = lv.first[l] + (int)(flat / (unsigned)K); c = (int)(flat % (unsigned)K); }
        const T* code = reg + ((i64)n * A + a) * 4;
        slotBox[slot0 + r] = decode_clip(Num<T>::to(code[0]), Num<T>::to(code[1]), Num<T>::to(code[2]), Num<T>::to(code[3]), anchors + (i64)a * 4, cd, H, W);
        slotScore[slot0 + r] = key_score(key);
        slotLabel[slot0 + r] = c;
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

// The first r candidates of every segment (segment-major): each segment's best, as its slots are sorted.
struct HeadSrc
{
    const float* score;
    const int* segCount;
    int k, r;
    __device__ __forceinline__ bool get(int i, u64& key) const
    {
        int seg = i / r, rank = i - seg * r;
        if (rank >= segCount[seg]) return false;
        int slot = seg * k + rank;
        key = desc_key(score[slot], (unsigned)slot);
        return true;
    }
};

// Block n: the image's candidate count; when it is at most offsetLimit, the largest coordinate among them (NaN if any
// is NaN), as batched_nms's coordinate-offset strategy needs; imgKept zeroed for nms_class; imgBound, nms_class's prefix
// bound: with more than prefixM candidates, the prefixM-th best score among each segment's first r = ceil(prefixM / segs)
// (the lowest of them if there are fewer), else -inf (no prefix). Any bound keeps nms_class exact (it checks that its
// prefix kept enough); this one costs segs * r keys and leaves at least min(prefixM, those keys) candidates in the prefix.
// Dynamic shared memory: cap keys (cap for prefixM).
extern "C" __global__ void image_stats(Params P, Slots sl, int cap, int offsetLimit)
{
    const float4* slotBox = sl.box;
    int segs = P.segs, k = P.k;
    extern __shared__ u64 buf[];
    __shared__ TopkState st;
    __shared__ float smax[32];
    __shared__ int scount[32];
    int n = blockIdx.x, S = segs * k, lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const int* segCount = sl.count + n * segs;
    int total = 0;
    for (int g = threadIdx.x; g < segs; g += blockDim.x) total += segCount[g];
    for (int o = 16; o > 0; o >>= 1) total += __shfl_xor_sync(0xffffffffu, total, o);
    if (lane == 0) scount[warp] = total;
    __syncthreads();
    total = 0;
    for (int w = 0; w < nw; w++) total += scount[w];
    __syncthreads();
    if (total <= offsetLimit)
    {
        float mx = -__int_as_float(0x7f800000);
        for (int s = threadIdx.x; s < S; s += blockDim.x)
        {
            int seg = s / k;
            if (s - seg * k >= segCount[seg]) continue;
            float4 b = slotBox[(i64)n * S + s];
            float v[4] = {b.x, b.y, b.z, b.w};
            for (int q = 0; q < 4; q++) mx = (mx != mx || v[q] != v[q]) ? qnan() : fmaxf(mx, v[q]);
        }
        for (int o = 16; o > 0; o >>= 1)
        {
            float om = __shfl_xor_sync(0xffffffffu, mx, o);
            mx = (mx != mx || om != om) ? qnan() : fmaxf(mx, om);
        }
        if (lane == 0) smax[warp] = mx;
        __syncthreads();
        if (threadIdx.x == 0)
        {
            for (int w = 1; w < nw; w++) { float om = smax[w]; mx = (mx != mx || om != om) ? qnan() : fmaxf(mx, om); }
            sl.imgMax[n] = mx;
        }
    }
    else if (threadIdx.x == 0) sl.imgMax[n] = 0.0f;   // not used: no coordinate offsets above offsetLimit
    if (threadIdx.x == 0) { sl.imgTotal[n] = total; sl.imgKept[n] = 0; }
    int M = P.prefixM;
    float bound = -__int_as_float(0x7f800000);
    if (M > 0 && total > M)
    {
        int r = (M + segs - 1) / segs;
        HeadSrc src{sl.score + (i64)n * S, segCount, k, min(r, k)};
        unsigned m = block_topk(src, segs * min(r, k), (unsigned)M, (unsigned)cap, buf, st);
        if (m > 0) bound = key_score(buf[m - 1]);
    }
    if (threadIdx.x == 0) sl.imgBound[n] = bound;
}

// Whether the better box a removes b. torchvision nms's IoU in float32, compared in double against the threshold (as
// the CPU): iouBelow is the largest float <= the double threshold; a zero (or NaN) intersection never suppresses.
// ODTK: widths + 1 (iouPlus), compared in float32. DLE (keepBelow): b survives only while iou < the threshold (NaN or
// 0 / 0 suppress). Adding iouPlus = 0 and the commuted area sum change no rounding.
__device__ __forceinline__ bool suppresses(float4 a, float4 b, const Params& P)
{
    float pl = P.iouPlus;
    float w = fmaxf(0.0f, fminf(a.z, b.z) - fmaxf(a.x, b.x) + pl);
    float h = fmaxf(0.0f, fminf(a.w, b.w) - fmaxf(a.y, b.y) + pl);
    float inter = w * h;
    if (!P.keepBelow && !(inter > 0.0f)) return false;
    float area = (a.z - a.x + pl) * (a.w - a.y + pl);
    float ovr = inter / (area + (b.z - b.x + pl) * (b.w - b.y + pl) - inter);
    return P.keepBelow ? !(ovr < P.iouBelow) : ovr > P.iouBelow;
}

// Block (class group g, image n): greedy NMS over the group's candidates in (score desc, slot) order; kept[slot] = 0/1.
// Groups are SSD segments (grpSlot null: slots g * k + i) or RetinaNet classes (grpSlot, grpStart, grpEnd).
// At most `offsetLimit` candidates in the image: boxes shifted by label * (max + 1) first, as batched_nms does then.
// Two passes. Pass 0 runs NMS only over the class's candidates scoring at least the image's bound (its prefixM-th best
// score; a prefix of the class's order, since NMS of a candidate depends only on better ones of its class), marks the
// rest not kept and adds the kept count to imgKept. If the image kept at least D, its best D kept candidates all score
// at least the bound (everything else scores below), so they are final_topd's exact answer; else pass 1 redoes the
// image's classes in full. With no bound (-inf: at most prefixM candidates) pass 0 is already the full NMS.
extern "C" __global__ void nms_class(Params P, Slots sl, const int* __restrict__ grpSlot, const int* __restrict__ grpStart, const int* __restrict__ grpEnd,
    int G, int offsetLimit, int D, int pass)
{
    const float4* slotBox = sl.box;
    const int* slotLabel = sl.label;
    const int* segCount = sl.count;
    unsigned char* kept = sl.kept;
    int S = P.S, k = P.k;
    __shared__ float4 sb[NMS_MAX];
    __shared__ int ss[NMS_MAX];
    __shared__ u64 mask[NMS_MAX * (NMS_MAX / 64)];
    __shared__ u64 rem[NMS_MAX / 64];
    __shared__ int sPrefix, sKept;
    int g = blockIdx.x, n = blockIdx.y;
    int cnt, first;
    if (grpSlot) { first = grpStart[n * G + g]; cnt = grpEnd[n * G + g] - first; }
    else { first = g * k; cnt = segCount[n * G + g]; }
    if (cnt <= 0) return;
    float bound = sl.imgBound[n];
    bool partial = bound > -__int_as_float(0x7f800000);
    if (pass == 1 && (!partial || sl.imgKept[n] >= D)) return;
    bool counting = pass == 0 && partial;
    bool offset = sl.imgTotal[n] <= offsetLimit;
    float step = sl.imgMax[n] + 1.0f;
    const float4* boxes = slotBox + (i64)n * S;
    unsigned char* keep = kept + (i64)n * S;
    if (counting)
    {
        const float* sc = sl.score + (i64)n * S;
        if (threadIdx.x == 0) { sPrefix = 0; sKept = 0; }
        __syncthreads();
        for (int i = threadIdx.x; i < cnt; i += blockDim.x)
        {
            bool in = sc[grpSlot ? grpSlot[(i64)n * S + first + i] : first + i] >= bound;
            bool nextIn = i + 1 < cnt && sc[grpSlot ? grpSlot[(i64)n * S + first + i + 1] : first + i + 1] >= bound;
            if (in && !nextIn) sPrefix = i + 1;
            if (!in) keep[grpSlot ? grpSlot[(i64)n * S + first + i] : first + i] = 0;
        }
        __syncthreads();
        cnt = sPrefix;
        if (cnt == 0) return;
    }
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
                bool lo = ja > i && ja < cnt && suppresses(a, sb[ja], P);
                bool hi = jb > i && jb < cnt && suppresses(a, sb[jb], P);
                unsigned blo = __ballot_sync(0xffffffffu, lo), bhi = __ballot_sync(0xffffffffu, hi);
                if (lane == 0) mask[i * W + w] = ((u64)bhi << 32) | blo;
            }
        }
        __syncthreads();
        if (threadIdx.x < 32)
        {
            // one warp walks the mask; lane w holds removed word w. Only surviving rows are visited (the next one is the
            // lowest clear bit of the current word past the last row), each ORing its mask words in. A row's bit is
            // final when it is reached (only better rows set it), so the final words give every candidate's fate.
            u64 removed = 0;
            int nk = 0;
            for (int w0 = 0; w0 < W; w0++)
            {
                int base = w0 * 64, len = min(cnt - base, 64), i = 0;
                u64 valid = len == 64 ? ~0ull : (1ull << len) - 1;
                while (i < len)
                {
                    u64 alive = ~__shfl_sync(0xffffffffu, removed, w0) & valid & (~0ull << i);
                    if (alive == 0) break;
                    int j = __ffsll((long long)alive) - 1;
                    if (lane < W) removed |= mask[(base + j) * W + lane];
                    nk++;
                    i = j + 1;
                }
            }
            if (lane < W) rem[lane] = removed;
            if (counting && lane == 0) atomicAdd(&sl.imgKept[n], nk);
        }
        __syncthreads();
        for (int i = threadIdx.x; i < cnt; i += blockDim.x) keep[ss[i]] = ((rem[i >> 6] >> (i & 63)) & 1ull) ? 0 : 1;
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
                if (suppresses(a, b, P)) keep[sj] = 0;
            }
        }
        __syncthreads();
    }
    if (counting)
    {
        int nk = 0;
        for (int i = threadIdx.x; i < cnt; i += blockDim.x) nk += keep[grpSlot ? grpSlot[(i64)n * S + first + i] : first + i];
        atomicAdd(&sKept, nk);
        __syncthreads();
        if (threadIdx.x == 0) atomicAdd(&sl.imgKept[n], sKept);
    }
}

// rev (DLE): equal scores put the later slot first, key index last - slot
struct KeptSrc
{
    const float* score;
    const unsigned char* kept;
    const int* segCount;
    int k;
    unsigned last;
    int rev;
    __device__ __forceinline__ bool get(int i, u64& key) const
    {
        int seg = i / k;
        if (i - seg * k >= segCount[seg] || !kept[i]) return false;
        key = desc_key(score[i], rev ? last - (unsigned)i : (unsigned)i);
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
    KeptSrc src{slotScore + (i64)n * S, kept + (i64)n * S, segCount + n * segs, k, (unsigned)(S - 1), P.reverse};
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
            int slot = P.reverse ? S - 1 - (int)(unsigned)buf[r] : (int)(unsigned)buf[r];
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
