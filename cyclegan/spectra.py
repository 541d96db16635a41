"""Store each instrument's average training spectrum with an exported model, for the app's view.

    python -m cyclegan.spectra --weights weights/piano_guitar --data data/corpus [--max-files N]

Reads DATA/<name_a> and DATA/<name_b>, keeps the training side of the run's seeded split (the
held-out files stay unseen), and writes MODEL/spectra.json (`weights.save_spectra`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import weights
from .data import list_audio, split
from .baselines import mean_spectrum


def compute(model_dir: Path, data: Path, max_files: int | None = None) -> Path:
    cfg = weights.read_config(model_dir)
    spectra = {}
    for name in (cfg.name_a, cfg.name_b):
        train, _ = split(list_audio(Path(data) / name), cfg.train)
        spectra[name] = mean_spectrum(train[:max_files], cfg.spec)
    return weights.save_spectra(model_dir, spectra, cfg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cyclegan.spectra", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True, help="an exported model folder (required)")
    ap.add_argument("--data", type=Path, default=Path("data/corpus"),
                    help="folder with one subfolder per instrument (default: data/corpus)")
    ap.add_argument("--max-files", type=int, default=None,
                    help="average at most this many training files per instrument (default: all)")
    args = ap.parse_args(argv)
    try:
        path = compute(args.weights, args.data, args.max_files)
    except (FileNotFoundError, ValueError) as e:  # AudioError and DataError are ValueErrors
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
