"""Blend the weights of a base model and a fine-tune of it, (1 - alpha) * base + alpha * tuned.

    python -m cyclegan.blend BASE TUNED --alpha 0.7 --out runs/blend/a0.70

A fine-tune starts from the base's weights, so the two sit in one basin and the straight line
between them stays a working model (WiSE-FT, Wortsman et al., CVPR 2022). Along it the
fine-tune's gain and what the base knew but the fine-tune forgot trade off smoothly. Choose
alpha on the selection corpus with `python -m cyclegan.pick`, never on the evaluation's data.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import weights
from .config import Config
from .models import Generators


def blend(base_dir: Path, tuned_dir: Path, alpha: float) -> tuple[Config, Generators]:
    """The blended generators, with the fine-tune's config (its spectrogram and its names)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] (0 = the base, 1 = the fine-tune), got {alpha}")
    base_cfg, base = weights.load(base_dir)
    cfg, tuned = weights.load(tuned_dir)
    if base_cfg.spec != cfg.spec or (base_cfg.name_a, base_cfg.name_b) != (cfg.name_a, cfg.name_b):
        raise ValueError(f"{base_dir} and {tuned_dir} differ in spectrogram settings or instrument names; "
                         "only a model and a fine-tune of it can be blended")
    b, t = base.state_dict(), tuned.state_dict()
    if {k: v.shape for k, v in b.items()} != {k: v.shape for k, v in t.items()}:
        raise ValueError(f"{base_dir} and {tuned_dir} have different generator architectures; "
                         "only a model and a fine-tune of it can be blended")
    with torch.no_grad():
        tuned.load_state_dict({k: torch.lerp(b[k], t[k], alpha) for k in t})
    return cfg, tuned


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", type=Path, help="exported model folder the fine-tune started from")
    ap.add_argument("tuned", type=Path, help="exported model folder of the fine-tune")
    ap.add_argument("--alpha", type=float, required=True, help="share of the fine-tune, 0 to 1")
    ap.add_argument("--out", type=Path, required=True, help="folder to export the blend to")
    a = ap.parse_args(argv)
    try:
        cfg, gens = blend(a.base, a.tuned, a.alpha)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(weights.export(a.out, gens, cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
