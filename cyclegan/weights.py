"""Exported models: two generators as safetensors plus the config as JSON, in weights/<name>/
(and optionally the run's discriminators, for fine-tunes)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import Config
from .models import Generators
from .store import REPO_ROOT, atomic_write_text, read_tensors, require_files, write_tensors

WEIGHTS_FILE, CONFIG_FILE = "generators.safetensors", "config.json"
DISCS_FILE = "discriminators.safetensors"  # optional: only training (`--init-from`) reads it
DEFAULT_ROOT = REPO_ROOT / "weights"
EXPORT_HINT = "export a model with `python train.py --export NAME`"


def export(out_dir: Path, gens: Generators, cfg: Config, discs: torch.nn.Module | None = None) -> Path:
    """The generators and config; with `discs`, the run's discriminators too, so that a fine-tune
    can go on against the critics its generators were trained with rather than fresh ones."""
    out_dir = Path(out_dir)
    names = {"name_a": cfg.name_a, "name_b": cfg.name_b}
    write_tensors(out_dir / WEIGHTS_FILE, _float32(gens), names)
    if discs is None:
        (out_dir / DISCS_FILE).unlink(missing_ok=True)  # never leave another run's critics beside these
    else:
        write_tensors(out_dir / DISCS_FILE, _float32(discs), names)
    cfg.save(out_dir / CONFIG_FILE)
    return out_dir


def _float32(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in module.state_dict().items()}


def read_config(model_dir: Path) -> Config:
    """The config of an exported model, once both of its files are known to be there."""
    require_files(model_dir, (CONFIG_FILE, WEIGHTS_FILE), EXPORT_HINT)
    return Config.load(Path(model_dir) / CONFIG_FILE)


def load(model_dir: Path, device: torch.device | str = "cpu") -> tuple[Config, Generators]:
    cfg = read_config(model_dir)
    gens = Generators(cfg)
    gens.load_state_dict({k: v.float() for k, v in read_tensors(Path(model_dir) / WEIGHTS_FILE).items()})
    return cfg, gens.to(device).eval()


@dataclass(frozen=True)
class Direction:
    """One way through a pair: source and target are the instrument names of its config."""
    source: str
    target: str
    model_dir: Path
    reverse: bool  # True: the pair's b2a generator translates

    @property
    def value(self) -> str:
        """The identifier the CLI, the API and the evaluation files use, e.g. "piano2guitar"."""
        return f"{self.source}2{self.target}"

    @property
    def label(self) -> str:
        return f"{self.source.title()} → {self.target.title()}"

    @property
    def round_trip(self) -> str:
        """The name of the cycle reconstruction, e.g. "piano2guitar2piano"."""
        return f"{self.value}2{self.source}"


def pair_directions(cfg: Config, model_dir: Path) -> tuple[Direction, Direction]:
    """A pair's two directions, a -> b first."""
    return (Direction(cfg.name_a, cfg.name_b, Path(model_dir), False),
            Direction(cfg.name_b, cfg.name_a, Path(model_dir), True))


def find_models(root: Path = DEFAULT_ROOT) -> list[Path]:
    root = Path(root)
    if (root / WEIGHTS_FILE).is_file():
        return [root]
    return sorted(p.parent for p in root.glob(f"*/{WEIGHTS_FILE}") if (p.parent / CONFIG_FILE).is_file())


def directions(root: Path = DEFAULT_ROOT) -> list[Direction]:
    """Both directions of every exported pair, so a new pair appears without code changes."""
    return [d for m in find_models(root) for d in pair_directions(Config.load(m / CONFIG_FILE), m)]


SPECTRA_FILE = "spectra.json"  # optional: each instrument's average training spectrum, for the app


def save_spectra(model_dir: Path, spectra: dict[str, np.ndarray], cfg: Config) -> Path:
    """Average linear magnitude per frequency bin of each instrument's training audio (on the
    model's scale, see `baselines.mean_spectrum`), written atomically next to config.json."""
    for name, s in spectra.items():
        if len(s) != cfg.spec.n_freq:
            raise ValueError(f"{name}: {len(s)} bins, but the model has {cfg.spec.n_freq}")
    body = {"n_freq": cfg.spec.n_freq, "spectra": {k: [float(f"{v:.4g}") for v in s] for k, s in spectra.items()}}
    path = Path(model_dir) / SPECTRA_FILE
    atomic_write_text(path, json.dumps(body) + "\n")
    return path


def load_spectra(model_dir: Path) -> dict[str, np.ndarray]:
    """The saved average spectra by instrument name; {} when there are none (or they do not fit)."""
    try:
        body = json.loads((Path(model_dir) / SPECTRA_FILE).read_text())
        spectra = {k: np.asarray(v, np.float32) for k, v in body["spectra"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    return {k: v for k, v in spectra.items() if v.shape == (body["n_freq"],)}
