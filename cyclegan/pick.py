"""Score training snapshots on a selection corpus and pick one by a fixed rule.

    python -m cyclegan.pick runs/NAME/snapshots/step_* [--data data/select-corpus]

Picking a checkpoint by the numbers of the final evaluation would tune on the test set, so
the pick uses its own corpus, rendered with another seed (`python -m cyclegan.corpus --out
data/select-corpus --minutes 5 --seed 7`), which neither training nor the evaluation reads.
For every model, both directions: transfer accuracy and chroma similarity over all the
clips of DATA/<name> (and DATA/<name>-driven), and the paired log-spectral distance over all of DATA/paired. The
rule: among the models with transfer >= --min-transfer and chroma >= --min-chroma both
ways, the lowest paired LSD averaged over the two directions wins.

With several `--strength` values each model is scored at each, and likewise at each
`--bass-cap-hz` (config.py's bass cap; 0 is off); `--write-strength` (one model) then stores the
winner's strength (and bass cap) in the model's config.json, as translate's defaults for it, and
`--decay-into NAME` the instrument that translate's decay (a user's option, not scored) applies to.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import audio, weights
from .classifier import DEFAULT_DIR as CLASSIFIER_DIR
from .classifier import Classifier
from .config import SpecConfig
from .layout import domain_files
from .layout import pairs as paired_groups
from .metrics import chroma_similarity, log_spectral_distance
from .store import REPO_ROOT, atomic_write_text
from .translate import Translator


def mean_lsd(outs: list[np.ndarray], refs: list[np.ndarray], spec: SpecConfig) -> float:
    return float(np.mean([log_spectral_distance(y, r, spec) for y, r in zip(outs, refs)])) if refs else float("nan")


def score(tr: Translator, clips: dict[str, list[np.ndarray]], pairs: dict[str, list[np.ndarray]],
          classifier: Classifier, identity_lsd: dict[str, float], strength: float = 1.0) -> dict[str, dict[str, float]]:
    """{"a2b": {transfer, chroma, lsd, identity_lsd}, "b2a": ...} for one model."""
    sr, row = tr.spec.sample_rate, {}
    for d in weights.pair_directions(tr.cfg, tr.model_dir):
        src, dst = d.source, d.target
        run = lambda waves: [tr.translate(w, d.reverse, spectrograms=False, strength=strength).translated
                             for w in waves]
        outs = run(clips[src])
        row[d.value] = {
            "transfer": float(np.mean([classifier.predict(y, sr) == dst for y in outs])),
            "chroma": float(np.mean([chroma_similarity(w, y, sr) for w, y in zip(clips[src], outs)])),
            "lsd": mean_lsd(run(pairs[src]), pairs[dst], tr.spec),
            "identity_lsd": identity_lsd[d.value],
        }
    return row


def _capped(tr: Translator, hz: float | None) -> Translator:
    if hz is not None:
        tr.cfg.bass_cap_hz = hz
    return tr


# The evaluation bar's own floors: the looser chroma floor before (0.8) passed a candidate whose
# held-out chroma then fell below the bar's 0.85 (docs/evaluation.md, "the pick's chroma floor").
MIN_TRANSFER, MIN_CHROMA = 0.9, 0.85


def passes(row: dict[str, dict[str, float]], min_transfer: float, min_chroma: float) -> bool:
    return all(d["transfer"] >= min_transfer and d["chroma"] >= min_chroma for d in row.values())


def rank(rows: dict[str, dict], min_transfer: float, min_chroma: float) -> list[str]:
    """Model paths, best first: those that pass by mean LSD, then the rest by their weakest
    transfer (ties by mean LSD)."""
    both_ways_lsd = lambda m: float(np.mean([d["lsd"] for d in rows[m].values()]))
    ok = sorted((m for m in rows if passes(rows[m], min_transfer, min_chroma)), key=both_ways_lsd)
    rest = sorted((m for m in rows if m not in ok),
                  key=lambda m: (-min(d["transfer"] for d in rows[m].values()), both_ways_lsd(m)))
    return ok + rest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", type=Path, nargs="+", help="exported model folders (e.g. a run's snapshots)")
    ap.add_argument("--data", type=Path, default=REPO_ROOT / "data" / "select-corpus")
    ap.add_argument("--classifier", type=Path, default=CLASSIFIER_DIR)
    ap.add_argument("--min-transfer", type=float, default=MIN_TRANSFER)
    ap.add_argument("--min-chroma", type=float, default=MIN_CHROMA)
    ap.add_argument("--out", type=Path, help="also write the scores here as JSON")
    ap.add_argument("--strength", type=float, nargs="+", default=[1.0],
                    help="translate --strength (1 to 2) to score every model at (default: 1)")
    ap.add_argument("--bass-cap-hz", type=float, nargs="+",
                    help="bass caps to score every model at (Config.bass_cap_hz; default: the model's own)")
    ap.add_argument("--decay-into", help="with --write-strength, also name the instrument that translate's decay "
                    "(a user's option, off by default) applies to, e.g. piano")
    ap.add_argument("--write-strength", action="store_true",
                    help="with one model: write the winning strength (and bass cap) into its config.json")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    a = ap.parse_args(argv)
    if any(c < 0 for c in a.bass_cap_hz or []):
        raise SystemExit("error: --bass-cap-hz takes frequencies >= 0 (0: no cap)")
    if a.write_strength and len(a.models) != 1:
        raise SystemExit("error: --write-strength sets one model's default; name one model")
    if a.decay_into is not None and not a.write_strength:
        raise SystemExit("error: --decay-into is written with --write-strength; add it")
    torch.set_num_threads(a.threads)
    try:
        classifier = Classifier.load(a.classifier)
        first = Translator(a.models[0])
        sr, names = first.spec.sample_rate, (first.cfg.name_a, first.cfg.name_b)
        if a.decay_into not in (None, "", *names):
            raise SystemExit(f"error: --decay-into {a.decay_into!r} is not one of the model's ({', '.join(names)})")
        clips = {n: [audio.load(p, sr) for p in domain_files(a.data, n)] for n in names}
        found = [g for g in paired_groups(a.data) if all(n in g for n in names)]
        pairs = {n: [audio.load(g[n], sr) for g in found] for n in names}
        # the untranslated input's distance does not depend on the model: once per direction
        identity = {d.value: mean_lsd(pairs[d.source], pairs[d.target], first.spec)
                    for d in weights.pair_directions(first.cfg, a.models[0])}
        caps = a.bass_cap_hz or [None]
        runs = [(m, s, c, str(m) + (f" @ {s:g}" if len(a.strength) > 1 else "") + (f", cap {c:g} Hz" if c is not None else ""))
                for m in a.models for s in a.strength for c in caps]
        rows = {key: score(_capped(Translator(m), c), clips, pairs, classifier, identity, s)
                for m, s, c, key in tqdm(runs, desc="models")}
    except (FileNotFoundError, ValueError) as e:  # DataError and AudioError are ValueErrors
        raise SystemExit(f"error: {e}") from None
    order = rank(rows, a.min_transfer, a.min_chroma)
    keys = list(rows[order[0]])
    print("| model | pass | " + " | ".join(f"{k} transfer | {k} chroma | {k} LSD (identity)" for k in keys) + " |")
    print("|---|---|" + "---|---|---|" * len(keys))
    for m in order:
        cells = [f"{d['transfer']:.3f} | {d['chroma']:.3f} | {d['lsd']:.2f} ({d['identity_lsd']:.2f})"
                 for d in rows[m].values()]
        print(f"| {m} | {'yes' if passes(rows[m], a.min_transfer, a.min_chroma) else 'no'} | " + " | ".join(cells) + " |")
    if a.write_strength:
        cfg = weights.read_config(a.models[0])
        cfg.strength, cap = next((s, c) for _, s, c, key in runs if key == order[0])
        cfg.bass_cap_hz = cfg.bass_cap_hz if cap is None else cap
        cfg.decay_into = cfg.decay_into if a.decay_into is None else a.decay_into
        cfg.save(a.models[0] / weights.CONFIG_FILE)
        print(f"wrote strength {cfg.strength:g}, bass cap {cfg.bass_cap_hz:g} Hz, decay into {cfg.decay_into or 'none'} "
              f"into {a.models[0] / weights.CONFIG_FILE}")
    if a.out:
        atomic_write_text(a.out, json.dumps({"rule": {"min_transfer": a.min_transfer, "min_chroma": a.min_chroma},
                                             "order": order, "scores": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
