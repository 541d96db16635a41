"""Shared fixtures: a tiny exported model (random weights, real format) and the bundled clips."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cyclegan import weights
from cyclegan.config import Config, ModelConfig
from cyclegan.models import Generators

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

torch.set_num_threads(1)  # tests are many small ops; one thread avoids oversubscribing CI's 2 cores


def tiny_config(**train) -> Config:
    cfg = Config(model=ModelConfig(ngf=4, n_blocks=1, bottleneck=16, ndf=4), name_a="piano", name_b="guitar")
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights/ root holding one exported pair, `piano_guitar`, as train.py would write it."""
    root = tmp_path_factory.mktemp("weights")
    cfg = tiny_config()
    torch.manual_seed(0)
    weights.export(root / "piano_guitar", Generators(cfg), cfg)
    return root


@pytest.fixture(scope="session")
def example_clips() -> dict[str, Path]:
    return {p.stem: p for p in sorted(EXAMPLES.glob("*.ogg"))}


def write_tones(folder: Path, n: int, kind: str, seconds: float = 1.5, sr: int = 25_000) -> list[Path]:
    """Decaying sines ("a") or buzzy square waves ("b"): two toy timbres, a few files each."""
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    paths = []
    for i in range(n):
        f = 220 * 2 ** (i / 12)
        wave = np.sin(2 * np.pi * f * t) * np.exp(-2 * t) if kind == "a" else 0.3 * np.sign(np.sin(2 * np.pi * f * t))
        paths.append(folder / f"{kind}{i}.wav")
        sf.write(paths[-1], 0.5 * wave, sr)
    return paths


@pytest.fixture(scope="session")
def toy_domains(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("toy")
    write_tones(root / "piano", 4, "a")
    write_tones(root / "guitar", 4, "b")
    return root / "piano", root / "guitar"
