"""Evaluate an exported pair against two baselines, in both directions, on the training corpus's
held-out split and on every held-out evaluation set found beside it; prints the tables.

    python -m cyclegan.evaluate --weights weights/piano_guitar [--data data/corpus] [--tone driven]
        [--classifier weights/instrument_classifier] [--out DIR] [--max-clips N] [--update-model]

Methods: the model; identity (output = input); a fixed EQ (average target / average source
magnitude spectrum of the training files, applied per bin with the input's phase). Sets: the
CycleGAN's validation split of DATA/<name> (the seeded split of training) with DATA/paired, and
DATA/heldout-family and DATA/heldout-recorded (a sample family no model trains on, plain and under
held-out recording conditions), DATA/real-piano(-recorded) (the same guitars with a recorded
grand as the piano) and DATA/real-guitar(-recorded) (that grand and a recorded electric guitar),
every clip. Guitar inputs are DATA/guitar (clean, jazz) and DATA/guitar-driven (overdriven,
distorted), reported apart. `--tone driven` adds piano->guitar through the amp chain, scored
against driven guitars, with every baseline through the same chain.
FD: Fréchet distance between the outputs and real target clips of the same set, on the
classifier's penultimate features. Results go to --out; --update-model also writes them into
the model folder (the app shows those).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import audio, weights
from .baselines import EQBaseline, mean_spectrum
from .classifier import DEFAULT_DIR as CLASSIFIER_DIR
from .classifier import Classifier
from .data import list_audio, split
from .layout import EvalSet, corpus_set, held_out_sets
from .metrics import (chroma_similarity, frechet_distance, log_spectral_distance, onset_f_measure, paired_gain,
                      wilson_interval)
from .store import REPO_ROOT, atomic_write_text, repo_relative
from .tone import apply_tone, has_tones
from .translate import Translator

METHODS = ("model", "identity", "eq")
CLIP_METRICS = ("cycle_error", "transfer_accuracy", "chroma", "onset_f")
COLUMNS = (("cycle_error", "cycle err", "{:.4f}"), ("transfer_accuracy", "transfer acc", "{:.3f}"),
           ("chroma", "chroma sim", "{:.3f}"), ("onset_f", "onset F", "{:.3f}"),
           ("paired_lsd_db", "paired LSD dB", "{:.2f}"), ("paired_chroma", "paired chroma", "{:.3f}"),
           ("frechet", "FD", "{:.1f}"))
PAIRED_METRICS = ("paired_lsd_db", "paired_chroma")  # against the true target of a pair; identity's chroma there
# is the true target's own against the input: what the chroma column's 1.0 would be for a perfect translation


@dataclass
class Judge:
    """What every set is scored with: the model, the EQ baseline, the classifier, the tones."""
    tr: Translator
    eq: EQBaseline
    clf: Classifier
    tones: tuple[str, ...]
    progress: bool = True
    strength: float = 1.0  # Translator.translate's
    decay: bool = False  # Translator.translate's, on the translations into the model's decay_into

    def outputs(self, wave: np.ndarray, reverse: bool) -> dict[str, tuple[np.ndarray, float]]:
        decay = self.decay and self.tr.cfg.decays(self.tr.target(reverse))
        t = self.tr.translate(wave, reverse, spectrograms=False, strength=self.strength, decay=decay)
        return {"model": (t.translated, t.cycle_error), "identity": (wave, 0.0), "eq": self.eq.translate(wave, reverse)}

    def variants(self, d: weights.Direction) -> list[tuple[str, str]]:
        """(result key, tone) for a direction: its clean output, and each other tone asked for."""
        extra = [(f"{d.value}_{t}", t) for t in self.tones if t != "clean" and has_tones(d.target)]
        return [(d.value, "clean"), *extra]


@dataclass
class Rows:
    values: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {m: {k: [] for k in (*CLIP_METRICS, *PAIRED_METRICS)} for m in METHODS})
    embeddings: dict[str, list[np.ndarray]] = field(default_factory=lambda: {m: [] for m in METHODS})
    groups: list[str] = field(default_factory=list)


def _score_clips(j: Judge, d: weights.Direction, clips: list[tuple[Path, str]], rows: dict[str, Rows]) -> list[bool]:
    """Per-clip metrics of every method and tone; returns whether the classifier knew each input."""
    sr, known = j.tr.spec.sample_rate, []
    for path, group in tqdm(clips, desc=f"{d.value}", disable=not j.progress):
        w = audio.load(path, sr)
        known.append(j.clf.predict(w, sr) == d.source)
        outs = j.outputs(w, d.reverse)
        for key, t in j.variants(d):
            r = rows[key]
            r.groups.append(group)
            for m, (out, err) in outs.items():
                out = apply_tone(out, sr, t) if t != "clean" else out
                label, emb = j.clf.judge(out, sr)
                v = r.values[m]
                v["cycle_error"].append(err)
                v["transfer_accuracy"].append(float(label == d.target))
                v["chroma"].append(chroma_similarity(w, out, sr))
                v["onset_f"].append(onset_f_measure(w, out, sr))
                r.embeddings[m].append(emb)
    return known


def _score_pairs(j: Judge, d: weights.Direction, pairs: list[dict[str, Path]], rows: dict[str, Rows]) -> None:
    sr = j.tr.spec.sample_rate
    for pair in tqdm(pairs, desc=f"{d.value} (paired)", disable=not j.progress):
        w = audio.load(pair[d.source], sr)
        outs = j.outputs(w, d.reverse)
        for key, t in j.variants(d):
            ref = pair.get(d.target if t == "clean" else f"{d.target}-{t}")
            if ref is None:
                continue
            w_ref = audio.load(ref, sr)
            for m, (out, _) in outs.items():
                out = apply_tone(out, sr, t) if t != "clean" else out
                v = rows[key].values[m]
                v["paired_lsd_db"].append(log_spectral_distance(out, w_ref, j.tr.spec))
                v["paired_chroma"].append(chroma_similarity(w_ref, out, sr))


def _reference_embeddings(j: Judge, files: list[Path]) -> np.ndarray:
    sr = j.tr.spec.sample_rate
    return np.array([j.clf.judge(audio.load(p, sr), sr)[1] for p in files])


def _finite(v: float | None) -> float | None:  # None for a figure over too few clips
    return v if v is not None and np.isfinite(v) else None


def _summary(r: Rows, refs: np.ndarray, known: list[bool]) -> dict:
    """Means per method, the model's intervals and gains, transfer per input group and on the
    inputs the classifier knew (an input it already mishears would count as transferred for free)."""
    mean = lambda v: float(np.mean(v)) if v else None  # noqa: E731
    table = {m: {**{k: mean(v) for k, v in r.values[m].items()},
                 "frechet": _finite(frechet_distance(np.array(r.embeddings[m]), refs) if len(refs) else None)}
             for m in METHODS}
    hits, groups = r.values["model"]["transfer_accuracy"], np.array(r.groups)
    by_group = {g: float(np.mean(np.array(hits)[groups == g])) for g in dict.fromkeys(r.groups)}
    kept = np.array(hits)[np.array(known, bool)]
    return {"methods": table, "transfer_interval": wilson_interval(hits),
            "transfer_on_known": {"accuracy": float(kept.mean()) if len(kept) else None, "clips": len(kept)},
            "transfer_by_input": by_group if len(by_group) > 1 else {},
            "paired_lsd_gain": {m: paired_gain(r.values["model"]["paired_lsd_db"], r.values[m]["paired_lsd_db"])
                                for m in METHODS[1:]}}


def evaluate_set(j: Judge, s: EvalSet, model_dir: Path) -> dict:
    """Every figure of one evaluation set, both directions (and each tone asked for)."""
    out = {"description": s.description, "directions": {}, "transfer_interval": {}, "transfer_by_input": {},
           "transfer_on_known": {}, "paired_lsd_gain": {}, "input_accuracy": {}}
    for d in weights.pair_directions(j.tr.cfg, model_dir):
        rows = {key: Rows() for key, _ in j.variants(d)}
        known = _score_clips(j, d, s.clips[d.source], rows)
        _score_pairs(j, d, s.pairs, rows)
        out["input_accuracy"][d.value] = float(np.mean(known)) if known else None
        for key, t in j.variants(d):
            refs = s.references.get(d.target if t == "clean" else f"{d.target}-{t}", [])
            summary = _summary(rows[key], _reference_embeddings(j, refs), known)
            out["directions"][key] = summary.pop("methods")
            for k, v in summary.items():
                out[k][key] = v
    return out


def _realtime_factor(tr: Translator, files: list[Path], reverse: bool) -> float:
    """Seconds of processing per second of audio: translation + reconstruction, as the CLI runs it."""
    waves = [audio.load(p, tr.spec.sample_rate) for p in files]
    tr.translate(waves[0], reverse, spectrograms=False)  # warm-up
    seconds = sum(tr.translate(w, reverse, spectrograms=False).seconds for w in waves)
    return seconds / (sum(len(w) for w in waves) / tr.spec.sample_rate)


def evaluate(model_dir: Path, data: Path, classifier: Classifier, max_clips: int | None = None,
             eq_files: int = 200, progress: bool = True, tones: tuple[str, ...] = ("clean",),
             strength: float | None = None, decay: bool = False) -> dict:
    """The in-distribution figures at the top level (as the app reads them), the held-out sets under "sets"."""
    tr = Translator(model_dir)
    strength = tr.cfg.strength if strength is None else strength
    names = (tr.cfg.name_a, tr.cfg.name_b)
    missing = [n for n in names if n not in classifier.classes]
    if missing:
        raise ValueError(f"the classifier knows {classifier.classes}, not {missing}")
    if decay and tr.cfg.decay_into not in names:
        raise ValueError(f"--decay: this model's config.json names no instrument to decay into ({tr.cfg.decay_into!r})")
    train_files = {n: split(list_audio(data / n), tr.cfg.train)[0] for n in names}
    eq = EQBaseline(*(mean_spectrum(train_files[n][:eq_files], tr.spec) for n in names), tr.spec)
    j = Judge(tr, eq, classifier, tones, progress, strength, decay)
    main_set = corpus_set(data, names, tr.cfg.train, max_clips)
    result = {"model": repo_relative(model_dir), "data": repo_relative(data), "names": list(names),
              "tones": list(tones), "strength": strength, "decay": decay, **evaluate_set(j, main_set, model_dir),
              "eq_baseline": f"mean spectra of {min(eq_files, len(train_files[names[0]]))} + "
                             f"{min(eq_files, len(train_files[names[1]]))} training clips",
              "classifier": {k: classifier.info.get(k) for k in
                             ("held_out_accuracy", "held_out_family", "held_out_family_accuracy")},
              "embedding": "the instrument classifier's penultimate features (mean+max pooled conv maps, "
                           "mean over 1.3 s windows)",
              "sets": {s.name: evaluate_set(j, s, model_dir) for s in held_out_sets(data, names, max_clips)},
              "machine": {"device": str(tr.device), "torch_threads": torch.get_num_threads(),
                          "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}}
    result["realtime_factor"] = {d.value: _realtime_factor(tr, [p for p, _ in main_set.clips[d.source][:8]], d.reverse)
                                 for d in weights.pair_directions(tr.cfg, model_dir)}
    return result


def _set_markdown(r: dict) -> list[str]:
    fmt = lambda v, f: f.format(v) if v is not None and np.isfinite(v) else "n/a"  # noqa: E731
    lines = ["| direction | method | " + " | ".join(c[1] for c in COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 2)]
    for key, methods in r["directions"].items():
        lines += [f"| {key} | {m} | " + " | ".join(fmt(v.get(k), f) for k, _, f in COLUMNS) + " |"
                  for m, v in methods.items()]
    gains = "; ".join(f"{k}: " + ", ".join(f"{m} {g['mean_db']:+.2f} [{g['low_db']:+.2f}, {g['high_db']:+.2f}]"
                                         for m, g in v.items() if g) for k, v in r["paired_lsd_gain"].items())
    return lines + [
        "", f"- clips: {r['description']}",
        "- model's transfer accuracy, 95 % Wilson interval over the clips: "
        + ", ".join(f"{k} [{v['low']:.3f}, {v['high']:.3f}]" for k, v in r["transfer_interval"].items() if v),
        "- model's transfer accuracy by input: " + ("; ".join(
            f"{k}: " + ", ".join(f"{g} {v:.3f}" for g, v in by.items()) for k, by in r["transfer_by_input"].items() if by)
            or "one input group"),
        "- paired LSD gain of the model over each baseline (dB, mean and 95 % interval over the pairs): " + gains,
        "- classifier accuracy on the untranslated inputs: "
        + ", ".join(f"{k} {fmt(v, '{:.3f}')}" for k, v in r["input_accuracy"].items()),
        "- model's transfer accuracy on the inputs the classifier knew: " + ", ".join(
            f"{k} {fmt(v['accuracy'], '{:.3f}')} ({v['clips']} clips)" for k, v in r["transfer_on_known"].items())]


def to_markdown(r: dict) -> str:
    c, m = r["classifier"], r["machine"]
    family = ", ".join(f"{k} {v:.3f}" for k, v in (c.get("held_out_family_accuracy") or {}).items())
    lines = [f"model: `{r['model']}`; data: `{r['data']}`; tones: {', '.join(r['tones'])}", "",
             "### validation split (training families and conditions)", "", *_set_markdown(r),
             f"- EQ baseline: {r['eq_baseline']}; identity's cycle error is 0 by construction",
             f"- FD: Fréchet distance to real target clips of the same set, on {r['embedding']}",
             f"- classifier held-out accuracy (real clips): {c.get('held_out_accuracy') or float('nan'):.4f}; on the held-out "
             f"family {c.get('held_out_family')} (untranslated, never trained on): {family or 'unknown'}",
             "- real-time factor (translation + reconstruction, processing s / audio s): "
             + ", ".join(f"{k} {v:.4f}" for k, v in r["realtime_factor"].items())
             + f" on {m['device']} ({m['torch_threads']} torch thread(s), {m['cpu']}, {m['cpu_count']} cores)"]
    for name, s in r["sets"].items():
        lines += ["", f"### {name}", "", *_set_markdown(s)]
    return "\n".join(lines) + "\n"


def write(result: dict, out: Path) -> str:
    table = to_markdown(result)
    atomic_write_text(out / "evaluation.json", json.dumps(result, indent=2))
    atomic_write_text(out / "evaluation.md", table)
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True, help="an exported model folder (weights/<name>)")
    ap.add_argument("--data", type=Path, default=REPO_ROOT / "data" / "corpus",
                    help="corpus with <name_a>/, <name_b>/ (and paired/, heldout-*/) folders")
    ap.add_argument("--classifier", type=Path, default=CLASSIFIER_DIR)
    ap.add_argument("--out", type=Path, help="where evaluation.json/.md go (default: runs/evaluation/<model>)")
    ap.add_argument("--update-model", action="store_true",
                    help="also write them into the model folder (what the app's scores panel shows)")
    ap.add_argument("--tone", action="append", default=[], choices=("clean", "driven"),
                    help="also score piano->guitar in this tone (repeatable); clean is always scored")
    ap.add_argument("--strength", type=float,
                    help="translate --strength (default: the model's); --update-model takes the default only")
    ap.add_argument("--decay", action="store_true", help="translate --decay on the translations into the model's "
                    "decay_into (default: off, as the app); not with --update-model")
    ap.add_argument("--max-clips", type=int, help="at most this many clips per folder (and pairs) of each set")
    ap.add_argument("--eq-files", type=int, default=200, help="training clips per domain for the EQ baseline")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads")
    a = ap.parse_args(argv)
    if a.update_model and (a.strength is not None or a.decay):
        raise SystemExit("error: --update-model records the model's own defaults (the app's); drop --strength and --decay")
    torch.set_num_threads(a.threads)
    models = weights.find_models(a.weights)
    if len(models) != 1:
        raise SystemExit(f"error: {a.weights} holds {len(models)} exported models; name one folder")
    tones = tuple(dict.fromkeys(["clean", *a.tone]))
    try:
        result = evaluate(models[0], a.data, Classifier.load(a.classifier), a.max_clips, a.eq_files, tones=tones,
                          strength=a.strength, decay=a.decay)
    except (FileNotFoundError, ValueError) as e:  # DataError and AudioError are ValueErrors
        raise SystemExit(f"error: {e}") from None
    outs = [a.out or REPO_ROOT / "runs" / "evaluation" / models[0].name] + [models[0]] * a.update_model
    table = [write(result, out) for out in outs][0]
    print(table + "\nwrote " + ", ".join(str(o / "evaluation.json") for o in outs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
