"""Weight blending of a model and its fine-tune (cyclegan.blend)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cyclegan import blend, weights
from cyclegan.models import Generators

from conftest import tiny_config


@pytest.fixture()
def base_and_tuned(tmp_path: Path) -> tuple[Path, Path]:
    cfg = tiny_config()
    torch.manual_seed(1)
    weights.export(tmp_path / "base", Generators(cfg), cfg)
    torch.manual_seed(2)
    weights.export(tmp_path / "tuned", Generators(cfg), cfg)
    return tmp_path / "base", tmp_path / "tuned"


def test_blend_exports_the_weighted_mean_of_the_two_models(base_and_tuned: tuple[Path, Path], tmp_path: Path) -> None:
    base_dir, tuned_dir = base_and_tuned
    assert blend.main([str(base_dir), str(tuned_dir), "--alpha", "0.25", "--out", str(tmp_path / "mix")]) == 0
    b, t = (weights.load(d)[1].state_dict() for d in base_and_tuned)
    cfg, mixed = weights.load(tmp_path / "mix")
    assert (cfg.name_a, cfg.name_b) == ("piano", "guitar")
    for k, v in mixed.state_dict().items():
        torch.testing.assert_close(v, 0.75 * b[k] + 0.25 * t[k])
    assert any(not torch.equal(b[k], t[k]) for k in b)  # the two inputs really differ


@pytest.mark.parametrize("alpha, which", [(0.0, 0), (1.0, 1)])
def test_blend_ends_are_the_two_models(base_and_tuned: tuple[Path, Path], alpha: float, which: int) -> None:
    _, mixed = blend.blend(*base_and_tuned, alpha)
    want = weights.load(base_and_tuned[which])[1].state_dict()
    for k, v in mixed.state_dict().items():
        torch.testing.assert_close(v, want[k], rtol=0, atol=0)


def test_blend_refuses_unrelated_models_and_a_bad_alpha(base_and_tuned: tuple[Path, Path], tmp_path: Path) -> None:
    wide = tiny_config()
    wide.model.ngf = 6
    weights.export(tmp_path / "wide", Generators(wide), wide)
    with pytest.raises(SystemExit, match="different generator architectures"):
        blend.main([str(base_and_tuned[0]), str(tmp_path / "wide"), "--alpha", "0.5", "--out", str(tmp_path / "x")])
    other_stft = tiny_config()
    other_stft.spec.hop_length = 64
    weights.export(tmp_path / "hop64", Generators(other_stft), other_stft)
    with pytest.raises(SystemExit, match="differ in spectrogram settings"):
        blend.main([str(base_and_tuned[0]), str(tmp_path / "hop64"), "--alpha", "0.5", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match=r"alpha must be in \[0, 1\]"):
        blend.main([*map(str, base_and_tuned), "--alpha", "1.5", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="missing"):
        blend.main([str(base_and_tuned[0]), str(tmp_path / "nowhere"), "--alpha", "0.5", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
