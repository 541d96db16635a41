"""Exported models: two generators as safetensors plus the config as JSON, in weights/<name>/."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as st_save

from .config import Config
from .store import REPO_ROOT, atomic_write_bytes
from .training import Generators

WEIGHTS_FILE, CONFIG_FILE = "generators.safetensors", "config.json"
DEFAULT_ROOT = REPO_ROOT / "weights"


def export(out_dir: Path, gens: Generators, cfg: Config, half: bool = False) -> Path:
    """half=True stores float16 (half the size); loading always gives float32."""
    out_dir = Path(out_dir)
    dtype = torch.float16 if half else torch.float32
    tensors = {k: v.detach().cpu().to(dtype).contiguous() for k, v in gens.state_dict().items()}
    atomic_write_bytes(out_dir / WEIGHTS_FILE, st_save(tensors, metadata={"name_a": cfg.name_a, "name_b": cfg.name_b}))
    cfg.save(out_dir / CONFIG_FILE)
    return out_dir


def read_config(model_dir: Path) -> Config:
    """The config of an exported model, once both of its files are known to be there."""
    model_dir = Path(model_dir)
    for f in (CONFIG_FILE, WEIGHTS_FILE):
        if not (model_dir / f).is_file():
            raise FileNotFoundError(f"{model_dir / f} is missing; export a model with `python train.py --export NAME`")
    return Config.load(model_dir / CONFIG_FILE)


def load(model_dir: Path, device: torch.device | str = "cpu") -> tuple[Config, Generators]:
    model_dir = Path(model_dir)
    cfg = read_config(model_dir)
    gens = Generators(cfg)
    state = {k: v.float() for k, v in load_file(str(model_dir / WEIGHTS_FILE)).items()}
    gens.load_state_dict(state)
    return cfg, gens.to(device).eval()


@dataclass(frozen=True)
class Direction:
    value: str  # "piano2guitar"
    label: str  # "Piano → Guitar"
    model_dir: Path
    reverse: bool  # True: use b2a as the translator


def find_models(root: Path = DEFAULT_ROOT) -> list[Path]:
    root = Path(root)
    if (root / WEIGHTS_FILE).is_file():
        return [root]
    return sorted(p.parent for p in root.glob(f"*/{WEIGHTS_FILE}") if (p.parent / CONFIG_FILE).is_file())


def directions(root: Path = DEFAULT_ROOT) -> list[Direction]:
    """Both directions of every exported pair, so a new pair appears without code changes."""
    out = []
    for d in find_models(root):
        cfg = Config.load(d / CONFIG_FILE)
        a, b = cfg.name_a, cfg.name_b
        out.append(Direction(f"{a}2{b}", f"{a.title()} → {b.title()}", d, False))
        out.append(Direction(f"{b}2{a}", f"{b.title()} → {a.title()}", d, True))
    return out
