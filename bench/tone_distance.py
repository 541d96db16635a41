"""How well does "clean guitar, then the amp chain" match a real driven guitar? Tunes cyclegan.tone.

    python bench/tone_distance.py [--data data/corpus]

For every group of DATA/paired (training families only, so the held-out family stays unseen),
the paired log-spectral distance to the group's driven guitar (GM 29/30 presets only: the amp
tone of the corpus is made by this very chain) of: the clean guitar untouched, the clean guitar
through `amp_chain` at several drive and cabinet settings, and the piano through the same chain
(the evaluation's baseline). A perfect clean translation followed by the chain can do no better
than the clean-guitar row.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cyclegan import audio, tone  # noqa: E402
from cyclegan.config import SpecConfig  # noqa: E402
from cyclegan.metrics import log_spectral_distance  # noqa: E402
from cyclegan.store import REPO_ROOT  # noqa: E402

SETTINGS = [dict(drive_db=d, cabinet_hz=c, mid_db=g) for d in (18, 24, 30) for c in (5000, 6500, 9000, 11000)
            for g in (0.0, 3.0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO_ROOT / "data" / "corpus")
    data = ap.parse_args().data
    m = json.loads((data / "manifest.json").read_text())
    sr = m["settings"]["sample_rate"]
    spec = SpecConfig(sample_rate=sr)
    driven = [c for c in m["clips"] if c["set"] == "paired" and c["path"].startswith("paired/guitar-driven/")
              and c["tone"] in ("overdriven", "distorted")]
    load = lambda p: audio.load(data / p, sr)  # noqa: E731
    rows: dict[str, list[float]] = {"clean guitar, no chain": [], "piano, no chain": []}
    for c in driven:
        ref, clean = load(c["path"]), load(c["path"].replace("guitar-driven", "guitar"))
        piano = load(c["path"].replace("guitar-driven", "piano"))
        rows["clean guitar, no chain"].append(log_spectral_distance(clean, ref, spec))
        rows["piano, no chain"].append(log_spectral_distance(piano, ref, spec))
        for s in SETTINGS:
            chain = tone.amp_chain(**s)
            for name, x in (("clean guitar", clean), ("piano", piano)):
                y = chain(np.ascontiguousarray(x, np.float32)[None], sr)[0]
                rows.setdefault(f"{name}, " + ", ".join(f"{k} {v:g}" for k, v in s.items()), []).append(
                    log_spectral_distance(y, ref, spec))
    print(f"paired LSD to the driven guitar (GM 29/30), dB, mean over {len(driven)} groups of {data}")
    for k, v in sorted(rows.items(), key=lambda kv: np.mean(kv[1])):
        print(f"{np.mean(v):6.2f}  {k}")


if __name__ == "__main__":
    main()
