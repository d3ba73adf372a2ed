namespace Osprey.Core.Backends;

/// <summary>Element-wise functions of one input. A and B are the parameters some of them take.</summary>
public enum UnaryKind
{
    Identity,
    Neg,
    Abs,
    Sqrt,
    Exp,
    Log,
    Relu,
    /// <summary>min(max(x, 0), 6).</summary>
    Relu6,
    /// <summary>x if x &gt; 0 else A*x (A is the negative slope).</summary>
    LeakyRelu,
    Silu,
    Sigmoid,
    /// <summary>clamp(x/6 + 1/2, 0, 1), as torch.nn.Hardsigmoid.</summary>
    HardSigmoid,
    /// <summary>x * hardsigmoid(x).</summary>
    HardSwish,
    Tanh,
    /// <summary>Exact (erf) GELU, torch's default.</summary>
    Gelu,
    /// <summary>clamp(x, A, B).</summary>
    Clamp,
}

/// <summary>A unary function with its parameters; also used as a fused activation.</summary>
public readonly record struct UnaryOp(UnaryKind Kind, float A = 0, float B = 0)
{
    public static readonly UnaryOp None = new(UnaryKind.Identity);
    public static UnaryOp LeakyRelu(float slope = 0.01f) => new(UnaryKind.LeakyRelu, slope);
    public static UnaryOp Clamp(float min, float max) => new(UnaryKind.Clamp, min, max);
    public static implicit operator UnaryOp(UnaryKind kind) => new(kind);
}

/// <summary>Element-wise functions of two broadcast inputs. Comparisons produce bool tensors.</summary>
public enum BinaryOp
{
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

public enum ReduceOp
{
    Sum,
    Mean,
    Max,
    Min,
}

public enum PoolKind
{
    Max,
    Avg,
}

/// <summary>Interpolation modes of torch.nn.functional.interpolate (align_corners=False).</summary>
public enum ResizeMode
{
    Nearest,
    Bilinear,
}

/// <summary>2-D convolution geometry, as torch.nn.Conv2d.</summary>
public sealed record Conv2dParams(
    int StrideH = 1, int StrideW = 1,
    int PadH = 0, int PadW = 0,
    int DilationH = 1, int DilationW = 1,
    int Groups = 1)
{
    public static Conv2dParams Square(int stride = 1, int pad = 0, int dilation = 1, int groups = 1) =>
        new(stride, stride, pad, pad, dilation, dilation, groups);

    public int OutH(int h, int kh) => (h + 2 * PadH - DilationH * (kh - 1) - 1) / StrideH + 1;
    public int OutW(int w, int kw) => (w + 2 * PadW - DilationW * (kw - 1) - 1) / StrideW + 1;
}

/// <summary>What a convolution or matrix product may fuse after the product: y = act(x*w + bias + residual).</summary>
public sealed record Epilogue(Tensors.Tensor? Bias = null, Tensors.Tensor? Residual = null, UnaryOp Activation = default)
{
    public static readonly Epilogue None = new();
}

/// <summary>2-D pooling geometry, as torch.nn.MaxPool2d / AvgPool2d.</summary>
public sealed record Pool2dParams(
    int KernelH, int KernelW,
    int StrideH, int StrideW,
    int PadH = 0, int PadW = 0,
    bool CeilMode = false,
    bool CountIncludePad = true)
{
    public static Pool2dParams Square(int kernel, int stride, int pad = 0, bool ceilMode = false, bool countIncludePad = true) =>
        new(kernel, kernel, stride, stride, pad, pad, ceilMode, countIncludePad);

    public int OutH(int h) => OutSize(h, KernelH, StrideH, PadH);
    public int OutW(int w) => OutSize(w, KernelW, StrideW, PadW);

    /// <summary>PyTorch's pooling output size, including its ceil_mode rule: the last window must start inside the input or left padding.</summary>
    private int OutSize(int size, int k, int s, int p)
    {
        int num = size + 2 * p - k;
        int o = (CeilMode ? (num + s - 1) / s : num / s) + 1;
        if (CeilMode && (o - 1) * s >= size + p) o--;
        return o;
    }
}
