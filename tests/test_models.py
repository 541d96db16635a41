import pytest
import torch

from cyclegan.config import ModelConfig
from cyclegan.models import Discriminator, Generator, count_parameters, init_weights


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
