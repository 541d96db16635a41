"""Which recording stage breaks a translation? One laptop-strength stage at a time.

    python bench/condition_stages.py [--weights weights/piano_guitar] [--data data/corpus] [--max-clips 24]
        [--direction guitar2piano|piano2guitar]

Each input clip of the held-out family's plain set (guitar→piano: its clean/jazz and its driven
folder; piano→guitar: its pianos) goes through one stage of `conditions.record` (none, a narrow
band, two mic resonances, a wet room, noise, hard compression, a low-rate MP3), is translated and
judged by the instrument classifier; the count heard as the target, per stage, shows what a recipe
must prepare for.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cyclegan import audio  # noqa: E402
from cyclegan.classifier import Classifier  # noqa: E402
from cyclegan.conditions import record  # noqa: E402
from cyclegan.layout import named_set  # noqa: E402
from cyclegan.store import REPO_ROOT  # noqa: E402
from cyclegan.translate import Translator  # noqa: E402

DRY = {"space": "bench", "detune_cents": 0.0, "level_db": -3.0, "noise_db": -120.0,
       "eq": {"highpass_hz": 20.0, "lowpass_hz": 12_000.0, "low_shelf_db": 0.0, "high_shelf_db": 0.0, "peaks": []}}
STAGES = {"none": {}, "band 200 Hz-7.5 kHz": {"eq": {"highpass_hz": 200.0, "lowpass_hz": 7_500.0}},
          "two mic resonances, dull shelves": {"eq": {"low_shelf_db": -7.0, "high_shelf_db": -7.0,
                                                      "peaks": [[1_200.0, 6.0, 1.5], [3_000.0, 6.0, 1.5]]}},
          "room 0.7, wet 0.3": {"room": {"size": 0.7, "wet": 0.3, "damping": 0.5}},
          "noise -48 dB": {"noise_db": -48.0},
          "compressor -32 dB, ratio 7": {"compressor": {"threshold_db": -32.0, "ratio": 7.0}},
          "MP3, quality 8.5": {"mp3_quality": 8.5}}


def stage(changes: dict) -> dict:
    p = copy.deepcopy(DRY)
    for k, v in changes.items():
        p[k] = {**p[k], **v} if k == "eq" else v
    return p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=REPO_ROOT / "weights" / "piano_guitar")
    ap.add_argument("--data", type=Path, default=REPO_ROOT / "data" / "corpus")
    ap.add_argument("--max-clips", type=int, default=24, help="clips per input folder")
    ap.add_argument("--direction", choices=("guitar2piano", "piano2guitar"), default="guitar2piano")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    tr, clf = Translator(a.weights), Classifier.load()
    reverse = a.direction == "guitar2piano"  # B->A
    source, target = (tr.cfg.name_b, tr.cfg.name_a) if reverse else (tr.cfg.name_a, tr.cfg.name_b)
    sr = tr.spec.sample_rate
    try:
        clips = named_set(a.data, "heldout-family", (tr.cfg.name_a, tr.cfg.name_b), a.max_clips).clips[source]
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    waves = [audio.load(path, sr) for path, _ in clips]
    for name, changes in STAGES.items():
        heard = sum(clf.predict(tr.translate(record(w, stage(changes), sr, np.random.default_rng(0)), reverse,
                                             spectrograms=False).translated, sr) == target for w in waves)
        print(f"{name:34s} {heard}/{len(waves)} heard as {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
