// Detection training losses on the device (Osprey.Detection/Training/Losses/DeviceLoss.cs): anchor matching, RetinaNet's
// sigmoid focal loss, SSD's softmax cross-entropy with hard-negative mining, and the box losses, each with its gradient.
// Reproduce the CPU losses (RetinaNetLoss, SsdLoss, Matcher, BoxIou, BoxCoder.EncodeOne): compiled with --fmad=false
// (KernelCache: modules named detect*), so IoUs and codes round as the CPU's float32 does and thresholds decide alike.
// Element math is float32; sums are float64, per block in a fixed order, then one block sums the partials in a fixed
// order (loss_finish), so a step's loss does not depend on timing. No host synchronisation anywhere.
//
// Targets (ground truth) of a batch travel as one float array: boxes [N, G, 4] (x1, y1, x2, y2), labels [N, G], counts [N]
// (G: the batch's largest count, at least 1; labels and counts as floats, exact below 2^24).
//   match_best   -> per (image, ground truth): the largest key (sortable IoU << 32 | ~anchor) over the anchors
//   match_assign -> per (image, anchor): matched index (-1 background, -2 ignored), class (bg for none), foreground counts
//   focal_*      -> per logit: focal loss (0.25 / 2 by default) and gradient; ignored anchors get 0
//   box_*        -> per anchor: L1 / smooth L1 on the encoded target over foreground, gradient
//   ssd_ce_*     -> per (image, anchor), one warp: log-sum-exp and cross-entropy with its class
//   ssd_mine     -> per image, one block: the ratio x positives hardest negatives (descending loss, ties by index) by radix
//                   select; selection weight per anchor (times counted x gradScale / foreground), loss partial
//   ssd_grad_*   -> per logit: (softmax - one-hot) x weight
//   loss_finish  -> classification and box sums from the partials

#define LOSS_TPB 256
#define MINE_TPB 1024

struct MatchP { int N, A, G; float high, low; int lowQuality, forceBest, background; };
struct FocalP { int N, A, K; float alpha, gamma; double gradScale; };
// kind 0: L1, 1: smooth L1 (beta); perImage 1: RetinaNet (1 / (max(1, fg_i) N)), 0: SSD (1 / max(1, sum fg))
struct BoxP { int N, A, G; float wx, wy, ww, wh, beta; int kind, perImage; double gradScale; };

// ascending unsigned order = ascending float order (NaN above +inf)
__device__ __forceinline__ unsigned sortable(float f)
{
    unsigned u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }
__device__ __forceinline__ int imax(int a, int b) { return a > b ? a : b; }
__device__ __forceinline__ float unsortable(unsigned u) { return __uint_as_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u); }

// torchvision box_iou of a ground truth g and an anchor b, BoxIou.Matrix's operation order
__device__ __forceinline__ float box_iou(const float* g, const float* b)
{
    float areaA = (g[2] - g[0]) * (g[3] - g[1]);
    float areaB = (b[2] - b[0]) * (b[3] - b[1]);
    float w = fmaxf(fminf(g[2], b[2]) - fmaxf(g[0], b[0]), 0.f);
    float h = fmaxf(fminf(g[3], b[3]) - fmaxf(g[1], b[1]), 0.f);
    float inter = w * h;
    return inter / (areaA + areaB - inter);
}

__device__ __forceinline__ int gt_count(const float* tg, int N, int G, int i) { return (int)tg[(long long)N * G * 5 + i]; }

__device__ __forceinline__ u64 warp_max_u64(u64 v)
{
    for (int o = 16; o > 0; o >>= 1)
    {
        u64 w = __shfl_down_sync(0xffffffffu, v, o);
        v = w > v ? w : v;
    }
    return v;
}

__device__ __forceinline__ double warp_sum(double v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

// block sum in a fixed order (warp trees, then the first warp over the warp sums); result valid in thread 0
__device__ double block_sum(double v)
{
    __shared__ double part[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    int warps = (blockDim.x + 31) >> 5;
    v = threadIdx.x < warps ? part[threadIdx.x] : 0.0;
    if (warp == 0) v = warp_sum(v);
    return v;
}

// grid (ceil(A / LOSS_TPB), N); best [N, G] zeroed by the caller
extern "C" __global__ void match_best(const float* anchors, const float* tg, MatchP P, u64* best)
{
    int i = blockIdx.y, j = blockIdx.x * blockDim.x + threadIdx.x;
    int cnt = gt_count(tg, P.N, P.G, i);
    const float* boxes = tg + (long long)i * P.G * 4;
    for (int g = 0; g < cnt; g++)
    {
        u64 key = 0;
        if (j < P.A) key = ((u64)sortable(box_iou(boxes + 4 * g, anchors + 4 * (long long)j)) << 32) | (u64)(0xffffffffu - (unsigned)j);
        key = warp_max_u64(key);
        if ((threadIdx.x & 31) == 0 && key != 0) atomicMax(best + (long long)i * P.G + g, key);
    }
}

// grid (ceil(A / LOSS_TPB), N); fg [N] zeroed by the caller. Matcher.Match: best ground truth (first on ties, NaN wins),
// background below low, ignored below high; low-quality matches keep the argmax where the IoU equals a ground truth's best;
// SSD forcing gives each ground truth its best anchor (a later ground truth wins).
extern "C" __global__ void match_assign(const float* anchors, const float* tg, MatchP P, const u64* best, int* matches, int* cls, int* fg)
{
    int i = blockIdx.y, j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= P.A) return;
    int cnt = gt_count(tg, P.N, P.G, i);
    const float* boxes = tg + (long long)i * P.G * 4;
    const float* labels = tg + (long long)P.N * P.G * 4 + (long long)i * P.G;
    const float* b = anchors + 4 * (long long)j;
    int m = -1;
    if (cnt > 0)
    {
        float v = box_iou(boxes, b);
        int g = 0;
        for (int k = 1; k < cnt; k++)
        {
            float q = box_iou(boxes + 4 * k, b);
            if (q > v || (is_nan(q) && !is_nan(v))) { v = q; g = k; }
        }
        m = v < P.low ? -1 : v < P.high ? -2 : g;
        if (P.lowQuality)
            for (int k = 0; k < cnt; k++)
            {
                float top = unsortable((unsigned)(best[(long long)i * P.G + k] >> 32));
                if (box_iou(boxes + 4 * k, b) == top) { m = g; break; }
            }
        if (P.forceBest)
            for (int k = 0; k < cnt; k++)
                if ((unsigned)(best[(long long)i * P.G + k] & 0xffffffffu) == 0xffffffffu - (unsigned)j) m = k;
    }
    long long row = (long long)i * P.A + j;
    matches[row] = m;
    cls[row] = m >= 0 ? (int)labels[m] : P.background;
    if (m >= 0) atomicAdd(fg + i, 1);
}

// LossFunctions.SigmoidFocal in float32; w: the anchor's weight (0 ignored)
__device__ __forceinline__ float focal(float x, float t, float alpha, float gamma, float w, float* grad)
{
    float e = expf(-fabsf(x));
    float p = x >= 0.f ? 1.f / (1.f + e) : e / (1.f + e);
    float ce = (1.f - t) * x + fmaxf(-x, 0.f) + log1pf(e);
    float q = p + t - 2.f * p * t;
    float a = alpha >= 0.f ? alpha * t + (1.f - alpha) * (1.f - t) : 1.f;
    float dq = (1.f - 2.f * t) * p * (1.f - p);
    float mod, dmod;
    if (gamma == 2.f) { mod = q * q; dmod = 2.f * q * dq; }
    else { mod = powf(q, gamma); dmod = gamma == 0.f ? 0.f : gamma * powf(q, gamma - 1.f) * dq; }
    *grad = w * a * ((p - t) * mod + ce * dmod);
    return w * a * ce * mod;
}

// I: the index type (32-bit division when the logits allow it)
template <typename T, typename I>
__device__ double focal_run(const T* x, const int* matches, const int* cls, const int* fg, T* grad, FocalP P)
{
    I total = (I)P.N * (I)P.A * (I)P.K;
    I stride = (I)gridDim.x * blockDim.x;
    double sum = 0;
    for (I idx = (I)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride)
    {
        I row = idx / (I)P.K;
        int c = (int)(idx - row * (I)P.K);
        int i = (int)(row / (I)P.A);
        float g = 0.f;
        if (matches[row] != -2)
        {
            float w = (float)(1.0 / ((double)imax(1, fg[i]) * (double)P.N));
            sum += (double)focal(Num<T>::to(x[idx]), cls[row] == c ? 1.f : 0.f, P.alpha, P.gamma, w, &g);
            g = (float)((double)g * P.gradScale);
        }
        grad[idx] = Num<T>::from(g);
    }
    return sum;
}

// grid-stride over N x A x K logits with a fixed grid; partial[blockIdx.x] = this block's loss sum
template <typename T>
__device__ void focal_loss(const T* x, const int* matches, const int* cls, const int* fg, T* grad, FocalP P, double* partial)
{
    bool small = (long long)P.N * P.A * P.K < 0x7fffffffLL - (long long)gridDim.x * blockDim.x;
    double sum = small ? focal_run<T, unsigned>(x, matches, cls, fg, grad, P) : focal_run<T, long long>(x, matches, cls, fg, grad, P);
    sum = block_sum(sum);
    if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}
extern "C" __global__ void focal_f32(const float* x, const int* m, const int* c, const int* fg, float* g, FocalP P, double* part) { focal_loss<float>(x, m, c, fg, g, P, part); }
extern "C" __global__ void focal_f16(const half_t* x, const int* m, const int* c, const int* fg, half_t* g, FocalP P, double* part) { focal_loss<half_t>(x, m, c, fg, g, P, part); }
extern "C" __global__ void focal_bf16(const bf16_t* x, const int* m, const int* c, const int* fg, bf16_t* g, FocalP P, double* part) { focal_loss<bf16_t>(x, m, c, fg, g, P, part); }

// grid-stride over N x A anchors with a fixed grid: the box loss of foreground anchors (BoxCoder.EncodeOne targets)
template <typename T>
__device__ void box_loss(const T* reg, const float* anchors, const float* tg, const int* matches, const int* fg, T* grad, BoxP P, double* partial)
{
    long long total = (long long)P.N * P.A;
    long long stride = (long long)gridDim.x * blockDim.x;
    double sum = 0;
    for (long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x; row < total; row += stride)
    {
        int m = matches[row];
        T* gr = grad + 4 * row;
        if (m < 0)
        {
            for (int q = 0; q < 4; q++) gr[q] = Num<T>::from(0.f);
            continue;
        }
        int i = (int)(row / P.A);
        long long j = row - (long long)i * P.A;
        double scale;
        if (P.perImage) scale = 1.0 / ((double)imax(1, fg[i]) * (double)imax(1, P.N));
        else
        {
            int total = 0;
            for (int k = 0; k < P.N; k++) total += fg[k];
            scale = 1.0 / (double)imax(1, total);
        }
        const float* r = anchors + 4 * j;
        const float* b = tg + ((long long)i * P.G + m) * 4;
        float w = r[2] - r[0], h = r[3] - r[1];
        float cx = r[0] + 0.5f * w, cy = r[1] + 0.5f * h;
        float gw = b[2] - b[0], gh = b[3] - b[1];
        float gcx = b[0] + 0.5f * gw, gcy = b[1] + 0.5f * gh;
        float code[4] = { P.wx * (gcx - cx) / w, P.wy * (gcy - cy) / h, P.ww * logf(gw / w), P.wh * logf(gh / h) };
        for (int q = 0; q < 4; q++)
        {
            double d = (double)Num<T>::to(reg[4 * row + q]) - (double)code[q];
            double z = fabs(d), loss, dd;
            if (P.kind == 1 && P.beta > 0 && z < P.beta) { loss = 0.5 * z * z / P.beta; dd = d / P.beta; }
            else { loss = P.kind == 1 ? z - 0.5 * P.beta : z; dd = d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0; }
            sum += loss * scale;
            gr[q] = Num<T>::from((float)((double)(float)(dd * scale) * P.gradScale));
        }
    }
    sum = block_sum(sum);
    if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}
extern "C" __global__ void box_f32(const float* r, const float* an, const float* tg, const int* m, const int* fg, float* g, BoxP P, double* part) { box_loss<float>(r, an, tg, m, fg, g, P, part); }
extern "C" __global__ void box_f16(const half_t* r, const float* an, const float* tg, const int* m, const int* fg, half_t* g, BoxP P, double* part) { box_loss<half_t>(r, an, tg, m, fg, g, P, part); }
extern "C" __global__ void box_bf16(const bf16_t* r, const float* an, const float* tg, const int* m, const int* fg, bf16_t* g, BoxP P, double* part) { box_loss<bf16_t>(r, an, tg, m, fg, g, P, part); }

// one warp per (image, anchor) row of K logits: lse = log-sum-exp, ce = lse - x[class]
template <typename T>
__device__ void ssd_ce(const T* x, const int* cls, float* ce, float* lse, int rows, int K)
{
    long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const T* xr = x + row * K;
    float mx = neg_inf();
    for (int c = lane; c < K; c += 32) mx = fmaxf(mx, Num<T>::to(xr[c]));
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float s = 0.f;
    for (int c = lane; c < K; c += 32) s += expf(Num<T>::to(xr[c]) - mx);
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0)
    {
        float l = mx + logf(s);
        lse[row] = l;
        ce[row] = l - Num<T>::to(xr[cls[row]]);
    }
}
extern "C" __global__ void ssd_ce_f32(const float* x, const int* cls, float* ce, float* lse, int rows, int K) { ssd_ce<float>(x, cls, ce, lse, rows, K); }
extern "C" __global__ void ssd_ce_f16(const half_t* x, const int* cls, float* ce, float* lse, int rows, int K) { ssd_ce<half_t>(x, cls, ce, lse, rows, K); }
extern "C" __global__ void ssd_ce_bf16(const bf16_t* x, const int* cls, float* ce, float* lse, int rows, int K) { ssd_ce<bf16_t>(x, cls, ce, lse, rows, K); }

// the ranking key of an anchor as a sortable integer: -inf for positives (class > 0), else its loss
__device__ __forceinline__ unsigned mine_key(const float* ce, const int* cls, long long row) { return sortable(cls[row] > 0 ? neg_inf() : ce[row]); }

// grid N, block MINE_TPB. SsdLoss.Selected: anchors ranked by key descending, ties by index; the first ratio x positives are
// counted once more (positives once anyway). weight[row] = times x gradScale / max(1, batch foreground); partial[i] = the
// image's sum of times x ce / max(1, batch foreground).
extern "C" __global__ void ssd_mine(const float* ce, const int* cls, const int* fg, float* weight, double* partial, int N, int A, int ratio, double gradScale)
{
    __shared__ int hist[256];
    __shared__ int scan[MINE_TPB];
    __shared__ unsigned s_prefix;
    __shared__ int s_rem;
    int i = blockIdx.x, tid = threadIdx.x;
    const long long base = (long long)i * A;
    int pos = 0;
    for (int j = tid; j < A; j += blockDim.x) pos += cls[base + j] > 0 ? 1 : 0;
    pos = (int)block_sum((double)pos);
    if (tid == 0) s_rem = (long long)ratio * pos < (long long)A ? ratio * pos : A;
    __syncthreads();
    int k = s_rem;
    unsigned prefix = 0, mask = 0;
    if (k > 0 && k < A)
    {
        for (int shift = 24; shift >= 0; shift -= 8)
        {
            for (int b = tid; b < 256; b += blockDim.x) hist[b] = 0;
            __syncthreads();
            for (int j = tid; j < A; j += blockDim.x)
            {
                unsigned u = mine_key(ce, cls, base + j);
                if ((u & mask) == prefix) atomicAdd(&hist[(u >> shift) & 255u], 1);
            }
            __syncthreads();
            if (tid == 0)
            {
                int rem = s_rem, cum = 0, sel = 0;
                for (int b = 255; b >= 0; b--)
                {
                    if (cum + hist[b] >= rem) { sel = b; break; }
                    cum += hist[b];
                }
                s_rem = rem - cum;
                s_prefix = prefix | ((unsigned)sel << shift);
            }
            __syncthreads();
            prefix = s_prefix;
            mask |= 255u << shift;
        }
    }
    int rem = s_rem;   // equal-to-prefix anchors still to take, lowest index first
    // each thread a contiguous run of anchors; an exclusive scan of the equal counts ranks ties by index
    int chunk = (A + blockDim.x - 1) / blockDim.x;
    int j0 = tid * chunk < A ? tid * chunk : A, j1 = j0 + chunk < A ? j0 + chunk : A;
    int eq = 0;
    if (k > 0 && k < A)
        for (int j = j0; j < j1; j++) eq += mine_key(ce, cls, base + j) == prefix ? 1 : 0;
    scan[tid] = eq;
    __syncthreads();
    for (int o = 1; o < (int)blockDim.x; o <<= 1)
    {
        int v = tid >= o ? scan[tid - o] : 0;
        __syncthreads();
        scan[tid] += v;
        __syncthreads();
    }
    int rank = scan[tid] - eq;
    int total = 0;
    for (int q = 0; q < N; q++) total += fg[q];
    double inv = 1.0 / (double)imax(1, total);
    double sum = 0;
    for (int j = j0; j < j1; j++)
    {
        long long row = base + j;
        bool sel;
        if (k >= A) sel = true;
        else if (k == 0) sel = false;
        else
        {
            unsigned u = mine_key(ce, cls, row);
            sel = u > prefix || (u == prefix && rank++ < rem);
        }
        int times = (cls[row] > 0 ? 1 : 0) + (sel ? 1 : 0);
        weight[row] = (float)(times * (inv * gradScale));
        sum += times * (double)ce[row];
    }
    sum = block_sum(sum);
    if (tid == 0) partial[i] = sum * inv;
}

// per logit: (softmax - one-hot) x weight
template <typename T>
__device__ void ssd_grad(const T* x, const int* cls, const float* lse, const float* weight, T* grad, int rows, int K)
{
    long long total = (long long)rows * K;
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    long long row;
    int c;
    if (total < 0x7fffffffLL) { unsigned r = (unsigned)idx / (unsigned)K; row = r; c = (int)((unsigned)idx - r * (unsigned)K); }
    else { row = idx / K; c = (int)(idx - row * K); }
    float w = weight[row];
    float g = w == 0.f ? 0.f : (expf(Num<T>::to(x[idx]) - lse[row]) - (cls[row] == c ? 1.f : 0.f)) * w;
    grad[idx] = Num<T>::from(g);
}
extern "C" __global__ void ssd_grad_f32(const float* x, const int* c, const float* l, const float* w, float* g, int rows, int K) { ssd_grad<float>(x, c, l, w, g, rows, K); }
extern "C" __global__ void ssd_grad_f16(const half_t* x, const int* c, const float* l, const float* w, half_t* g, int rows, int K) { ssd_grad<half_t>(x, c, l, w, g, rows, K); }
extern "C" __global__ void ssd_grad_bf16(const bf16_t* x, const int* c, const float* l, const float* w, bf16_t* g, int rows, int K) { ssd_grad<bf16_t>(x, c, l, w, g, rows, K); }

// one block: out[0] = sum of partial[0, clsCount), out[1] = sum of partial[clsCount, clsCount + boxCount)
extern "C" __global__ void loss_finish(const double* partial, int clsCount, int boxCount, double* out)
{
    for (int part = 0; part < 2; part++)
    {
        int lo = part == 0 ? 0 : clsCount, n = part == 0 ? clsCount : boxCount;
        double s = 0;
        for (int q = threadIdx.x; q < n; q += blockDim.x) s += partial[lo + q];
        s = block_sum(s);
        if (threadIdx.x == 0) out[part] = s;
        __syncthreads();
    }
}
