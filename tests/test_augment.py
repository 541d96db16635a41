"""Random EQ on training crops: smooth bounded curves, shared by a twin pair, seeded, resumable."""
import numpy as np
import torch

from cyclegan.augment import ANCHORS_HZ, RandomEQ
from cyclegan.config import SpecConfig
from cyclegan.fit import RunOptions, fit
from faultkit import assert_same, cache, config, no_figures, train  # noqa: F401

SPEC = SpecConfig()


def test_curves_are_bounded_smooth_and_pass_through_their_anchors():
    eq = RandomEQ(SPEC, 6.0, seed=1)
    gains = eq.curves(500)[:, 0, :, 0] * SPEC.db_range / 2  # back to dB
    assert gains.shape == (500, SPEC.n_freq)
    assert float(gains.abs().max()) <= 6.0 + 1e-4 and float(gains.abs().max()) > 5.0
    freqs = np.arange(SPEC.n_freq) * SPEC.sample_rate / SPEC.n_fft
    assert torch.equal(gains[:, 0], gains[:, 1])  # flat below the first anchor (0 and 49 Hz)
    octaves = torch.tensor(np.log2(freqs[2:] / freqs[1:-1]), dtype=torch.float32)
    slope = (gains[:, 2:] - gains[:, 1:-1]).abs() / octaves  # dB per octave
    closest = np.log2(min(hi / lo for lo, hi in zip(ANCHORS_HZ, ANCHORS_HZ[1:])))
    assert float(slope.max()) <= 12 / closest + 1e-3  # +6 to -6 dB between two anchors at most: an EQ, not noise
    k = int(np.argmin(abs(freqs - 4_000)))
    assert abs(freqs[k] - ANCHORS_HZ[4]) < SPEC.sample_rate / SPEC.n_fft
    assert float(gains[:, k].std()) > 2.5  # each anchor draws its own value (uniform +-6: std 3.5)


def test_a_twin_pair_shares_its_row_curve_and_the_result_stays_in_range():
    x = torch.zeros(4, 1, SPEC.n_freq, 8)
    y = torch.full_like(x, 0.99)
    eq = RandomEQ(SPEC, 6.0, seed=2)
    gx, gy = eq(x, y)
    assert torch.equal(gy, (y + gx).clamp(-1, 1))  # same curve on both
    assert not torch.equal(gx[0], gx[1])  # rows differ
    assert torch.equal(gx[..., 0], gx[..., 7])  # one curve over the whole crop
    assert float(gy.max()) == 1.0
    none = eq(x, None)
    assert none[1] is None and none[0].shape == x.shape
    assert torch.equal(RandomEQ(SPEC, 6.0, seed=2)(x)[0], gx) and torch.equal(RandomEQ(SPEC, 0.0, seed=2)(x)[0], x)


def eq_run(domains, out, cache, steps: int, resume: bool = False):
    cfg = config(steps)
    cfg.train.eq_db = 6.0
    return fit(cfg, RunOptions(*domains, out=out, device="cpu", cache_dir=cache, resume=resume))


def test_a_run_with_eq_resumes_exactly_and_differs_from_one_without(toy_domains, cache, tmp_path):
    whole = eq_run(toy_domains, tmp_path / "whole", cache, 6)
    eq_run(toy_domains, tmp_path / "parts", cache, 4)
    assert_same(whole, eq_run(toy_domains, tmp_path / "parts", cache, 6, resume=True))
    plain = train(toy_domains, tmp_path / "plain", cache, steps=6)
    assert any(not torch.equal(p, q) for p, q in zip(plain.gens.a2b.parameters(), whole.gens.a2b.parameters()))
