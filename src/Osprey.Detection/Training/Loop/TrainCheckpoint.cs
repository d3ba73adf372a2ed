using System.Globalization;
using Osprey.Core.IO;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Models;
using Osprey.Detection.Training.Optim;

namespace Osprey.Detection.Training.Loop;

/// <summary>
/// The training checkpoint: one safetensors file that <see cref="Detector"/> / `osprey infer --weights` load as is.
/// <list type="bullet">
/// <item>Weights under the reference's names. Training updates the batch-norm-folded convolutions, so each frozen batch norm
/// is written at identity (weight 1, running mean 0, running variance v with 1 / sqrt(v + 1e-5) == 1 exactly in float32, its
/// bias carrying the folded bias): folding it again at load reproduces the trained tensors bit for bit.</item>
/// <item>Trainable tensors outside the convolutions (<see cref="DetectionModel.ExtraParameters"/>, e.g. SSD's L2Norm scale)
/// under their reference names and shapes. Under mixed precision the FP32 master weights are written, not the 16-bit copies:
/// every checkpoint is float32.</item>
/// <item>Optimiser buffers under <c>osprey.optimizer.{parameter index}.{buffer}</c> (ignored by weight loading).</item>
/// <item>Metadata: <c>osprey.arch</c>, <c>osprey.classes</c>, <c>osprey.iteration</c>, <c>osprey.optimizer.steps</c>.</item>
/// </list>
/// Written to <c>PATH.tmp</c> and renamed over PATH, so a kill mid-write leaves the previous checkpoint whole.
/// </summary>
public static class TrainCheckpoint
{
    private const string Prefix = ParameterTable.TrainingStatePrefix;
    private static readonly float s_identityVar = IdentityVariance();

    /// <param name="masters">The FP32 master of a 16-bit model tensor (by object identity), written in its place; null: none.</param>
    public static StateDict Weights(DetectionModel model, Func<Tensor, Tensor?>? masters = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var expected = model.Parameters.Expected;
        var dict = new StateDict();
        Tensor Value(Tensor t) => masters?.Invoke(t) ?? t;
        try
        {
            foreach (var (name, t) in model.ExtraParameters)
            {
                using var host = Host(Value(t));
                dict.Add(name, host.Reshape(expected[name].ToArray()));
            }
            foreach (var c in model.Parameters.Layers)
            {
                var w = Host(Value(c.Weight ?? throw new InvalidOperationException($"{c.Name}: weights not loaded")));
                var b = Host(Value(c.Bias!));
                dict.Add(c.Name + ".weight", w);
                bool hasBias = expected.ContainsKey(c.Name + ".bias");
                if (c.BatchNorm is not { } bn)
                {
                    if (hasBias) dict.Add(c.Name + ".bias", b);
                    else b.Dispose();
                    continue;
                }
                int o = c.OutChannels;
                if (hasBias)
                {
                    dict.Add(c.Name + ".bias", b);
                    dict.Add(bn + ".bias", Tensor.Zeros(new Shape(o)));
                }
                else dict.Add(bn + ".bias", b);
                dict.Add(bn + ".weight", Tensor.Full(new Shape(o), 1f));
                dict.Add(bn + ".running_mean", Tensor.Zeros(new Shape(o)));
                dict.Add(bn + ".running_var", Tensor.Full(new Shape(o), s_identityVar));
            }
            return dict;
        }
        catch
        {
            dict.Dispose();
            throw;
        }
    }

    private static Tensor Host(Tensor t)
    {
        using var dense = Op.Contiguous(t, MemoryFormat.Contiguous);
        using var f = dense.DType == DType.Float32 ? dense.Share() : Op.Cast(dense, DType.Float32);
        return Op.To(f, Device.Cpu);
    }

    public static void AddState(StateDict dict, string architecture, int classes, long iteration, Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(dict);
        ArgumentNullException.ThrowIfNull(optimizer);
        foreach (var (i, name, value) in optimizer.StateBuffers())
            dict.Add($"{Prefix}{i.ToString(CultureInfo.InvariantCulture)}.{name}", Op.To(value, Device.Cpu));
        dict.Metadata["osprey.arch"] = architecture;
        dict.Metadata["osprey.classes"] = classes.ToString(CultureInfo.InvariantCulture);
        dict.Metadata["osprey.iteration"] = iteration.ToString(CultureInfo.InvariantCulture);
        dict.Metadata["osprey.optimizer.steps"] = optimizer.Steps.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>amp runs: the loss scaler's scale and growth tracker (metadata <c>osprey.amp.scale</c>, <c>osprey.amp.growth</c>).</summary>
    public static void AddScaler(StateDict dict, GradScaler scaler)
    {
        ArgumentNullException.ThrowIfNull(dict);
        ArgumentNullException.ThrowIfNull(scaler);
        dict.Metadata["osprey.amp.scale"] = scaler.Scale.ToString("R", CultureInfo.InvariantCulture);
        dict.Metadata["osprey.amp.growth"] = scaler.GrowthTracker.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>Restores <see cref="AddScaler"/>'s values; a checkpoint without them (an fp32 or bf16 run continued under amp)
    /// leaves the scaler at its initial scale.</summary>
    public static void RestoreScaler(StateDict dict, string path, GradScaler scaler)
    {
        ArgumentNullException.ThrowIfNull(dict);
        ArgumentNullException.ThrowIfNull(scaler);
        if (!dict.Metadata.TryGetValue("osprey.amp.scale", out var s)) return;
        if (!float.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out float scale)
            || !dict.Metadata.TryGetValue("osprey.amp.growth", out var g)
            || !int.TryParse(g, NumberStyles.Integer, CultureInfo.InvariantCulture, out int growth))
            throw new WeightFileException($"{path}: metadata osprey.amp.scale/osprey.amp.growth are malformed");
        try
        {
            scaler.Restore(scale, growth);
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new WeightFileException($"{path}: {e.Message}");
        }
    }

    public static void WriteAtomic(string path, StateDict dict)
    {
        ArgumentNullException.ThrowIfNull(path);
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        SafeTensors.Save(path, dict); // writes PATH.tmp, then renames it over PATH
    }

    /// <summary>The run header of a checkpoint; throws <see cref="WeightFileException"/> naming the file if it is not one.</summary>
    public static (string Architecture, int Classes, long Iteration, long OptimizerSteps) ReadHeader(StateDict dict, string path)
    {
        ArgumentNullException.ThrowIfNull(dict);
        string Get(string key) => dict.Metadata.TryGetValue(key, out var v) ? v
            : throw new WeightFileException($"{path}: not an Osprey training checkpoint (metadata '{key}' missing); to start from these weights use --fine-tune");
        long Num(string key) => long.TryParse(Get(key), NumberStyles.Integer, CultureInfo.InvariantCulture, out long n) && n >= 0 ? n
            : throw new WeightFileException($"{path}: metadata '{key}' = '{Get(key)}' is not a non-negative integer");
        return (Get("osprey.arch"), checked((int)Num("osprey.classes")), Num("osprey.iteration"), Num("osprey.optimizer.steps"));
    }

    public static IEnumerable<(int Index, string Name, Tensor Value)> OptimizerBuffers(StateDict dict, string path)
    {
        ArgumentNullException.ThrowIfNull(dict);
        var list = new List<(int, string, Tensor)>();
        foreach (var (key, t) in dict.Entries)
        {
            if (!key.StartsWith(Prefix, StringComparison.Ordinal)) continue;
            string rest = key[Prefix.Length..];
            int dot = rest.IndexOf('.', StringComparison.Ordinal);
            if (dot <= 0 || !int.TryParse(rest.AsSpan(0, dot), NumberStyles.None, CultureInfo.InvariantCulture, out int i))
                throw new WeightFileException($"{path}: optimizer state key '{key}' is malformed");
            list.Add((i, rest[(dot + 1)..], t));
        }
        return list;
    }

    private static float IdentityVariance()
    {
        float v = 1f - 1e-5f;
        for (int k = 0; k < 64; k++)
        {
            float s = 1f * (1f / MathF.Sqrt(v + 1e-5f));
            if (s == 1f) return v;
            v = s > 1f ? MathF.BitIncrement(v) : MathF.BitDecrement(v);
        }
        throw new InvalidOperationException("no float32 variance folds to an exact identity");
    }
}
