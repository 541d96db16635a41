"""Averaging snapshots: the mean of the weights, one run's models only, written as an exported model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_config
from cyclegan import average, weights
from cyclegan.models import Generators
from cyclegan.translate import Translator


def _export(folder: Path, seed: int, **model) -> Path:
    cfg = tiny_config()
    for k, v in model.items():
        setattr(cfg.model, k, v)
    torch.manual_seed(seed)
    return weights.export(folder, Generators(cfg), cfg)


def test_average_is_the_mean_of_the_weights_and_loads(tmp_path: Path) -> None:
    a, b, c = (_export(tmp_path / n, s) for n, s in (("a", 0), ("b", 1), ("c", 2)))
    assert average.main([str(a), str(b), str(c), "--out", str(tmp_path / "mean")]) == 0
    got = weights.load(tmp_path / "mean")[1].state_dict()
    parts = [weights.load(m)[1].state_dict() for m in (a, b, c)]
    assert set(got) == set(parts[0])
    for k, v in got.items():
        torch.testing.assert_close(v, sum(p[k] for p in parts) / 3)
    assert not torch.equal(got[next(iter(got))], parts[0][next(iter(got))])  # it is not one of them
    wave = np.sin(np.linspace(0, 2000, 25_000)).astype(np.float32) * 0.5
    assert Translator(tmp_path / "mean").translate(wave, False, spectrograms=False).translated.shape == wave.shape


def test_average_of_one_model_is_that_model(tmp_path: Path) -> None:
    a = _export(tmp_path / "a", 0)
    cfg, gens = average.average([a])
    for k, v in gens.state_dict().items():
        torch.testing.assert_close(v, weights.load(a)[1].state_dict()[k])
    assert cfg == weights.read_config(a)


def test_average_refuses_models_of_another_kind(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, wide = _export(tmp_path / "a", 0), _export(tmp_path / "wide", 0, ngf=8)
    assert average.main([str(a), str(wide), "--out", str(tmp_path / "mean")]) == 1
    assert "another kind of model" in capsys.readouterr().err and not (tmp_path / "mean").exists()
    assert average.main([str(a), str(tmp_path / "nowhere"), "--out", str(tmp_path / "mean")]) == 1
    assert "is missing" in capsys.readouterr().err and not (tmp_path / "mean").exists()
    with pytest.raises(ValueError, match="at least one"):
        average.average([])
