"""Where a model fails: its transfer on one evaluation set, broken down by the material and tone
of each input clip (from the corpus manifest), so the next recipe knows what to add.

    python -m cyclegan.breakdown --weights weights/piano_guitar [--data data/corpus]
        [--set heldout-recorded] [--max-clips 24]

Each clip of the set's instrument folders is translated towards the other instrument and judged
by the instrument classifier; transfer is counted per guitar tone, per most voices sounding at
once (1, 2-3, 4+), per notes in the clip and per median note length ("held": a note held past
the generator's reach, ~0.3 s either side, hides its onset from the frames that must decay).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import audio, weights
from .classifier import DEFAULT_DIR as CLASSIFIER_DIR
from .classifier import Classifier
from .layout import named_set
from .store import REPO_ROOT
from .translate import Translator


ORDER = ["1", "2-3", "4+", "≤8", "9-20", ">20", "≤0.3 s", "0.3-0.6 s", ">0.6 s"]


def voices(notes: list[list[float]]) -> int:
    """The most notes sounding at once ([pitch, start, end, velocity] rows)."""
    edges = sorted([(n[1], 1) for n in notes] + [(n[2], -1) for n in notes])  # an end before a start at a tie
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def buckets(clip: dict) -> dict[str, str]:
    """The groups a manifest clip falls in."""
    notes = clip.get("notes") or []
    v = voices(notes)
    held = float(np.median([n[2] - n[1] for n in notes])) if notes else 0.0
    return {"tone": clip.get("tone") or "none", "voices": "1" if v <= 1 else "2-3" if v <= 3 else "4+",
            "notes": "≤8" if len(notes) <= 8 else "9-20" if len(notes) <= 20 else ">20",
            "held": "≤0.3 s" if held <= 0.3 else "0.3-0.6 s" if held <= 0.6 else ">0.6 s"}


def breakdown(model_dir: Path, data: Path, name: str, clf: Classifier, max_clips: int | None = None,
              progress: bool = True) -> dict[str, dict[str, dict[str, list[int]]]]:
    """{direction: {"tone" | "voices" | "notes": {group: [hits, clips]}}} on DATA/NAME."""
    tr, out = Translator(model_dir), {}
    clips = named_set(data, name, (tr.cfg.name_a, tr.cfg.name_b), max_clips).clips
    manifest = {c["path"]: c for c in json.loads((Path(data) / "manifest.json").read_text())["clips"]}
    for d in weights.pair_directions(tr.cfg, model_dir):
        counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        for p, _ in tqdm(clips[d.source], desc=d.value, disable=not progress):
            y = tr.translate(audio.load(p, tr.spec.sample_rate), d.reverse, spectrograms=False).translated
            hit = int(clf.predict(y, tr.spec.sample_rate) == d.target)
            for key, group in buckets(manifest[p.relative_to(Path(data)).as_posix()]).items():
                counts[key][group][0] += hit
                counts[key][group][1] += 1
        out[d.value] = {k: dict(sorted(v.items(), key=lambda kv: (ORDER.index(kv[0]) if kv[0] in ORDER else 99, kv[0])))
                        for k, v in counts.items()}
    return out


def to_text(result: dict) -> str:
    return "\n".join(f"{d} by {key}: " + ", ".join(f"{g} {h / n:.2f} ({h}/{n})" for g, (h, n) in groups.items())
                     for d, by in result.items() for key, groups in by.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True, help="an exported model folder")
    ap.add_argument("--data", type=Path, default=REPO_ROOT / "data" / "corpus", help="a rendered corpus")
    ap.add_argument("--set", default="heldout-recorded", help="a folder of DATA with instrument sub-folders")
    ap.add_argument("--classifier", type=Path, default=CLASSIFIER_DIR)
    ap.add_argument("--max-clips", type=int, help="at most this many clips per folder")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        result = breakdown(a.weights, a.data, a.set, Classifier.load(a.classifier), a.max_clips)
    except (FileNotFoundError, ValueError, KeyError) as e:  # a missing folder, manifest or clip in it
        raise SystemExit(f"error: {e}") from None
    print(to_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
