import pytest
import torch
import torch.nn.functional as F

from cyclegan.config import ModelConfig
from cyclegan.models import (ChannelSumConv, Discriminator, FrameNorm, Generator, NearestUpConv,
                             TimeConv, count_parameters, init_weights, reach_bound)


@pytest.mark.parametrize("arch, upsample, skip", [("212", "nearest", True), ("212", "transpose", False),
                                                  ("resnet", "nearest", False)])
@pytest.mark.parametrize("frames", [1, 7, 63, 101])
def test_generator_keeps_the_shape_for_any_frame_count(arch, upsample, skip, frames):
    g = Generator(ModelConfig(arch=arch, ngf=4, n_blocks=1, bottleneck=16, upsample=upsample, skip=skip), 256)
    x = torch.rand(2, 1, 256, frames) * 2 - 1
    y = g(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1


def test_skip_generator_starts_close_to_the_identity():
    g = Generator(ModelConfig(ngf=4, n_blocks=1, bottleneck=16), 256)
    init_weights(g, std=0.0)  # a zero residual: the output is the input
    x = torch.rand(1, 1, 256, 32) * 1.8 - 0.9
    assert torch.allclose(g(x), x, atol=1e-4)


def test_an_old_config_with_removed_experiment_fields_still_loads(tmp_path):
    """Exports made while the envelope head and feature matching existed carry their fields."""
    import json

    from cyclegan.config import Config

    old = Config().to_dict()
    old["model"].update(head="delta", envelope_bins=9)
    old["train"]["lambda_envelope"] = 0.0
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert Config.load(tmp_path / "config.json") == Config()


def test_generator_rejects_a_frequency_count_it_cannot_downsample():
    with pytest.raises(ValueError, match="divisible"):
        Generator(ModelConfig(n_down=3), 100)


def test_patchgan_sees_70x70_patches():
    d = Discriminator(ModelConfig(ndf=4))
    init_weights(d)
    # instance norm couples every position; without it the gradient shows the receptive field
    d.net = torch.nn.Sequential(*[torch.nn.Identity() if isinstance(m, torch.nn.InstanceNorm2d) else m for m in d.net])
    x = torch.zeros(1, 1, 256, 256, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = (x.grad[0, 0].abs().sum(1) > 0).nonzero()
    cols = (x.grad[0, 0].abs().sum(0) > 0).nonzero()
    assert int(rows.max() - rows.min() + 1) == 70 and int(cols.max() - cols.min() + 1) == 70


def test_reference_size_is_the_original_cyclegan():
    g = Generator(ModelConfig(arch="resnet", ngf=64, n_blocks=9, upsample="transpose", skip=False), 256)
    assert count_parameters(g) == pytest.approx(11.4e6, rel=0.02)


# The fast layers must compute exactly what their plain definitions say, with the same gradients.

def test_nearest_up_conv_is_upsample_then_reflect_padded_conv():
    torch.manual_seed(0)
    up = NearestUpConv(5, 3)
    x = torch.randn(2, 5, 9, 6, requires_grad=True)
    conv = up[1]
    plain = F.conv2d(F.pad(F.interpolate(x, scale_factor=2.0, mode="nearest"), (1, 1, 1, 1), mode="reflect"),
                     conv.weight, conv.bias)
    fast = up(x)
    assert fast.shape == (2, 3, 18, 12)
    assert torch.allclose(fast, plain, atol=1e-5)
    g_plain = torch.autograd.grad(plain.square().sum(), [x, conv.weight])
    g_fast = torch.autograd.grad(fast.square().sum(), [x, conv.weight])
    for a, b in zip(g_fast, g_plain):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_channel_sum_conv_matches_the_plain_conv_in_training_and_inference():
    torch.manual_seed(0)
    head = ChannelSumConv(6, 7)
    x = torch.randn(2, 6, 20, 13, requires_grad=True)
    plain = F.conv2d(F.pad(x, (3, 3, 3, 3), mode="reflect"), head.weight, head.bias)
    trained_path = head(x)  # grad enabled: the channels-last plain conv
    with torch.no_grad():
        fast = head(x)
    assert fast.shape == (2, 1, 20, 13)
    assert torch.allclose(fast, plain, atol=1e-5) and torch.allclose(trained_path, plain, atol=1e-5)
    g_plain = torch.autograd.grad(plain.square().sum(), [x, head.weight])
    g_fast = torch.autograd.grad(trained_path.square().sum(), [x, head.weight])
    for a, b in zip(g_fast, g_plain):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k", [1, 3])
def test_time_conv_is_a_reflect_padded_conv1d(k):
    torch.manual_seed(0)
    conv = TimeConv(5, 4, k)
    x = torch.randn(3, 5, 7, requires_grad=True)
    plain = F.conv1d(F.pad(x, (k // 2, k // 2), mode="reflect"), conv.weight, conv.bias)
    fast = conv(x)
    assert fast.shape == (3, 4, 7) and torch.allclose(fast, plain, atol=1e-5)
    assert set(conv.state_dict()) == {"weight", "bias"} and conv.weight.shape == (4, 5, k)  # nn.Conv1d's
    g_plain = torch.autograd.grad(plain.square().sum(), [x, conv.weight, conv.bias])
    g_fast = torch.autograd.grad(fast.square().sum(), [x, conv.weight, conv.bias])
    for a, b in zip(g_fast, g_plain):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_dilated_time_conv_is_a_reflect_padded_dilated_conv1d_and_takes_short_inputs():
    torch.manual_seed(0)
    conv = TimeConv(5, 4, 3, dilation=4)
    x = torch.randn(2, 5, 9)
    plain = F.conv1d(F.pad(x, (4, 4), mode="reflect"), conv.weight, conv.bias, dilation=4)
    assert torch.allclose(conv(x), plain, atol=1e-5)
    flat = torch.ones(1, 5, 2)  # shorter than the dilation: reflection alone is undefined, the edge repeats
    constant = (conv.weight.sum((1, 2)) + conv.bias)[None, :, None].expand(1, 4, 2)
    assert torch.allclose(conv(flat), constant, atol=1e-5)


def test_long_blocks_start_as_the_identity_and_widen_the_reach():
    torch.manual_seed(0)
    cfg, cfg_long = ModelConfig(ngf=4, n_blocks=1, bottleneck=16), ModelConfig(ngf=4, n_blocks=1, bottleneck=16, long_blocks=3)
    short, long = Generator(cfg, 256), Generator(cfg_long, 256)
    init_weights(long)
    missing, unexpected = long.load_state_dict(short.state_dict(), strict=False)
    assert not unexpected and {k.split(".body")[0] for k in missing} == {f"net.3.blocks.{i}" for i in (1, 2, 3)}
    x = torch.rand(1, 1, 256, 300) * 2 - 1
    with torch.no_grad():
        assert torch.equal(long(x), short(x))  # the added blocks change nothing until they learn
        for block in long.net[3].blocks[1:]:
            block.body[-1].weight.fill_(1.0)
        def reach(g):
            bumped = x.clone()
            bumped[..., 150] = -bumped[..., 150]
            changed = torch.nonzero((g(bumped) - g(x)).abs().amax((0, 1, 2)) > 0).flatten()
            return int(max(150 - changed.min(), changed.max() - 150))
        assert reach(short) <= reach_bound(cfg) == 2 * 6 + 4 * 3
        assert reach_bound(cfg) < reach(long) <= reach_bound(cfg_long) == 2 * 6 + 4 * 31  # dilations 1, 2, 4, 8


def test_frame_norm_normalises_each_frame_over_channels_and_frequency():
    torch.manual_seed(0)
    norm = FrameNorm(4)
    norm.weight.data.uniform_(0.5, 2), norm.bias.data.normal_()
    x = torch.randn(2, 4, 8, 5) * 3 + 1
    ref = torch.stack([F.group_norm(x[..., t], 1, norm.weight, norm.bias, 1e-5) for t in range(5)], -1)
    assert torch.allclose(norm(x), ref, atol=1e-5)
    x1 = torch.randn(2, 4, 5)  # (B, C, T): layer norm over channels
    ref1 = F.layer_norm(x1.transpose(1, 2), (4,), norm.weight, norm.bias, 1e-5).transpose(1, 2)
    assert torch.allclose(norm(x1), ref1, atol=1e-5)
