"""Average the generators of several snapshots of one run into one exported model.

    python -m cyclegan.average runs/NAME/snapshots/step_000{4750,5000,5250,5500} --out runs/NAME/average

A GAN's generators keep oscillating around a good solution: on the selection corpus, transfer
and pitch swing from one snapshot to the next, 250 steps apart. The mean of the last few
snapshots of one run (weight averaging along its trajectory, as in Yazıcı et al. 2019, "The
Unusual Effectiveness of Averaging in GAN Training") sits nearer the centre of that swing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import weights
from .config import Config
from .models import Generators


def average(model_dirs: list[Path]) -> tuple[Config, Generators]:
    """The element-wise mean of the models' generator weights, with the last model's config.
    The models must share their architecture, spectrogram and instrument names."""
    if not model_dirs:
        raise ValueError("give at least one model folder to average")
    loaded = [weights.load(m) for m in model_dirs]
    cfg, gens = loaded[-1]
    for m, (other, _) in zip(model_dirs, loaded):
        if (other.model, other.spec, other.name_a, other.name_b) != (cfg.model, cfg.spec, cfg.name_a, cfg.name_b):
            raise ValueError(f"{m} is another kind of model than {model_dirs[-1]} "
                             "(architecture, spectrogram or instruments differ): only one run's snapshots average")
    states = [g.state_dict() for _, g in loaded]
    mean = {k: torch.stack([s[k].float() for s in states]).mean(0) if v.is_floating_point() else v
            for k, v in states[-1].items()}
    gens.load_state_dict(mean)
    return cfg, gens


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cyclegan.average", description=__doc__.split("\n")[0])
    ap.add_argument("models", type=Path, nargs="+", help="exported model folders, e.g. a run's last snapshots")
    ap.add_argument("--out", type=Path, required=True, help="the folder to export the average to")
    a = ap.parse_args(argv)
    try:
        cfg, gens = average(a.models)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    weights.export(a.out, gens, cfg)
    print(f"averaged {len(a.models)} models into {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
