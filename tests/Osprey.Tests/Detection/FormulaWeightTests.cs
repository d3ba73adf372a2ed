using Osprey.Tests.Support;

namespace Osprey.Tests.Detection;

public class FormulaWeightTests
{
    /// <summary>Values printed by tools/formula.py, so the C# mirror cannot drift from the fixture generator unnoticed.</summary>
    [Fact]
    public void Formula_values_match_the_python_generator()
    {
        Assert.Equal(new[] { -0.6727547645568848f, -0.4260319471359253f, -0.9819275140762329f }, Formula.Values("abc", 3));
        Assert.Equal(12638187200555641996UL, Formula.Fnv1a64("a"));
        Assert.Equal(new[] { 0.9843887090682983f, 1.005984902381897f, 1.0039446353912354f }, FormulaWeights.For("backbone.body.layer1.0.bn1.weight", new(3)));
        Assert.Equal(new[] { -3.23110294342041f, -4.814143180847168f }, FormulaWeights.For("head.classification_head.cls_logits.bias", new(2)));
        Assert.Equal(new[] { -0.04727280139923096f, -0.6322946548461914f, -0.1584104299545288f, 0.859055757522583f, -0.647316575050354f, -0.3371853828430176f },
            FormulaWeights.For("backbone.body.conv1.weight", new(2, 3, 1, 1)));
        Assert.Equal(new[] { 1.3462053537368774f, 1.0064092874526978f }, FormulaWeights.For("backbone.body.layer2.0.downsample.1.running_var", new(2)));
    }
}
