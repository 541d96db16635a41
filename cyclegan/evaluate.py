"""Evaluate an exported pair against two baselines, in both directions; prints one table.

    python -m cyclegan.evaluate --weights weights/piano_guitar [--data data/corpus]
        [--classifier weights/instrument_classifier] [--out DIR] [--max-clips N]

Methods: the model; identity (output = input); a fixed EQ (average target / average source
magnitude spectrum of the training files, applied per frequency bin with the input's phase).
Metrics 1-3 use the CycleGAN's own validation split of DATA/<name_a>, DATA/<name_b> (the
same seeded split as training); metric 4 uses DATA/paired/<name>/ (the same notes rendered
by both instruments). evaluation.json and evaluation.md go to --out (default: the model dir).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import audio, weights
from .classifier import DEFAULT_DIR as CLASSIFIER_DIR
from .classifier import Classifier
from .config import SpecConfig
from .data import list_audio, split
from .metrics import chroma_similarity, log_spectral_distance, onset_f_measure, relative_cycle_error
from .store import REPO_ROOT, atomic_write_text, repo_relative
from .translate import Translator

METHODS = ("model", "identity", "eq")
COLUMNS = (("cycle_error", "cycle err", "{:.4f}"), ("transfer_accuracy", "transfer acc", "{:.3f}"),
           ("chroma", "chroma sim", "{:.3f}"), ("onset_f", "onset F", "{:.3f}"),
           ("paired_lsd_db", "paired LSD dB", "{:.2f}"))


def mean_spectrum(files: list[Path], spec: SpecConfig) -> np.ndarray:
    """Average linear magnitude per bin, as the model sees the audio (peak-normalised, floored)."""
    total, frames = np.zeros(spec.n_freq), 0
    for p in tqdm(files, desc="EQ baseline spectrum", leave=False, disable=len(files) < 50):
        mag = audio.from_model(audio.analyse(audio.load(p, spec.sample_rate), spec)[0], spec).numpy()
        total, frames = total + mag.sum(1), frames + mag.shape[1]
    return total / max(frames, 1)


class EQBaseline:
    """Spectral-envelope transfer: one fixed gain per bin, on the model's log scale.

    The gain is added to the model-scale input and clipped to the same [-db_range, 0] dB range
    the generators' tanh output has; the inverse EQ subtracts it again (the "cycle")."""

    def __init__(self, spectrum_a: np.ndarray, spectrum_b: np.ndarray, spec: SpecConfig):
        self.spec = spec
        gain_db = 20 * np.log10(np.maximum(spectrum_b, 1e-12) / np.maximum(spectrum_a, 1e-12))
        self.gain = torch.from_numpy(gain_db / (spec.db_range / 2)).float()[:, None]  # dB -> model units

    def translate(self, wave: np.ndarray, reverse: bool) -> tuple[np.ndarray, float]:
        """(translated wave, relative forward-cycle error) for A->B, or B->A when reverse."""
        g = -self.gain if reverse else self.gain
        x, angle = audio.analyse(wave, self.spec)
        y = (x + g).clamp(-1, 1)
        rec = (y - g).clamp(-1, 1)
        out = audio.match_level(audio.synthesise(y, angle, self.spec, len(wave)), wave)
        err = relative_cycle_error(audio.from_model(x, self.spec).numpy(), audio.from_model(rec, self.spec).numpy())
        return out, err


def _realtime_factor(tr: Translator, waves: list[np.ndarray], reverse: bool) -> float:
    """Seconds of processing per second of audio: translation + reconstruction, as the CLI runs it."""
    tr.translate(waves[0], reverse, spectrograms=False)  # warm-up
    seconds = sum(tr.translate(w, reverse, spectrograms=False).seconds for w in waves)
    return seconds / (sum(len(w) for w in waves) / tr.spec.sample_rate)


def paired_files(data: Path, a: str, b: str, limit: int | None) -> list[tuple[Path, Path]]:
    if not all((data / "paired" / n).is_dir() for n in (a, b)):
        return []
    bs = {p.name: p for p in list_audio(data / "paired" / b)}
    return [(p, bs[p.name]) for p in list_audio(data / "paired" / a) if p.name in bs][:limit]


def evaluate(model_dir: Path, data: Path, classifier: Classifier, max_clips: int | None = None,
             eq_files: int = 200, progress: bool = True) -> dict:
    tr = Translator(model_dir)
    cfg, spec, sr = tr.cfg, tr.spec, tr.spec.sample_rate
    names = (cfg.name_a, cfg.name_b)
    missing = [n for n in names if n not in classifier.classes]
    if missing:
        raise ValueError(f"the classifier knows {classifier.classes}, not {missing}")
    train_files, val_files = {}, {}
    for n in names:
        train_files[n], val_files[n] = split(list_audio(data / n), cfg.train)
        val_files[n] = val_files[n][:max_clips]
    eq = EQBaseline(*(mean_spectrum(train_files[n][:eq_files], spec) for n in names), spec)
    pairs = paired_files(data, *names, max_clips)
    shown = repo_relative(data)
    result = {"model": repo_relative(model_dir), "data": shown, "names": list(names),
              "held_out": {"metrics_1_3": f"the CycleGAN's validation split of {shown}/{{{names[0]},{names[1]}}} "
                                          f"({len(val_files[names[0]])} + {len(val_files[names[1]])} clips)",
                           "metric_4": f"{shown}/paired ({len(pairs)} note-identical pairs)" if pairs else "none found",
                           "eq_baseline": f"mean spectra of {min(eq_files, len(train_files[names[0]]))} + "
                                          f"{min(eq_files, len(train_files[names[1]]))} training clips"},
              "classifier": {"held_out_accuracy": classifier.info.get("held_out_accuracy"), "input_accuracy": {}},
              "directions": {}, "transfer_interval": {}, "paired_lsd_gain": {}, "realtime_factor": {},
              "machine": {"device": str(tr.device), "torch_threads": torch.get_num_threads(),
                          "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}}
    for d in weights.pair_directions(cfg, model_dir):
        src, dst, key, reverse = d.source, d.target, d.value, d.reverse
        rows = {m: {c[0]: [] for c in COLUMNS} for m in METHODS}
        waves = [audio.load(p, sr) for p in val_files[src]]
        inputs_right = []
        for w in tqdm(waves, desc=f"{key} (validation)", disable=not progress):
            inputs_right.append(classifier.predict(w, sr) == src)
            t = tr.translate(w, reverse)
            e_wave, e_err = eq.translate(w, reverse)
            for m, out, err in (("model", t.translated, t.cycle_error), ("identity", w, 0.0), ("eq", e_wave, e_err)):
                r = rows[m]
                r["cycle_error"].append(err)
                r["transfer_accuracy"].append(float(classifier.predict(out, sr) == dst))
                r["chroma"].append(chroma_similarity(w, out, sr))
                r["onset_f"].append(onset_f_measure(w, out, sr))
        for pa, pb in tqdm(pairs, desc=f"{key} (paired)", disable=not progress):
            w_src, w_ref = (audio.load(p, sr) for p in ((pb, pa) if reverse else (pa, pb)))
            outs = {"model": tr.translate(w_src, reverse).translated, "identity": w_src,
                    "eq": eq.translate(w_src, reverse)[0]}
            for m, out in outs.items():
                rows[m]["paired_lsd_db"].append(log_spectral_distance(out, w_ref, spec))
        result["transfer_interval"][key] = wilson_interval(rows["model"]["transfer_accuracy"])
        result["paired_lsd_gain"][key] = {m: paired_gain(rows["model"]["paired_lsd_db"], rows[m]["paired_lsd_db"])
                                          for m in METHODS[1:]}
        result["directions"][key] = {m: {k: (float(np.mean(v)) if v else None) for k, v in r.items()}
                                     for m, r in rows.items()}
        result["classifier"]["input_accuracy"][key] = float(np.mean(inputs_right))
        result["realtime_factor"][key] = _realtime_factor(tr, waves[:8], reverse)
    return result


def wilson_interval(hits: list[float], z: float = 1.96) -> dict[str, float] | None:
    """95 % Wilson score interval of a share of hits: with 48 clips one clip moves transfer
    accuracy by 2 points, so a reader needs to see how far the figure could be from the truth."""
    n = len(hits)
    if n == 0:
        return None
    p = float(np.mean(hits))
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return {"low": float((centre - half) / (1 + z * z / n)), "high": float((centre + half) / (1 + z * z / n))}


def paired_gain(model: list[float], baseline: list[float]) -> dict[str, float] | None:
    """How many dB the model's paired LSD is below a baseline's, on the same pairs, with a 95 %
    interval (normal approximation of the paired mean): "clearly better" means its low end > 0."""
    if len(model) < 2:
        return None
    d = np.asarray(baseline) - np.asarray(model)
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    return {"mean_db": float(d.mean()), "low_db": float(d.mean() - half), "high_db": float(d.mean() + half)}


def to_markdown(r: dict) -> str:
    head = "| direction | method | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for key, methods in r["directions"].items():
        for m, vals in methods.items():
            cells = [fmt.format(vals[k]) if vals[k] is not None else "n/a" for k, _, fmt in COLUMNS]
            lines.append(f"| {key} | {m} | " + " | ".join(cells) + " |")
    c, held = r["classifier"], r["held_out"]
    acc = c["held_out_accuracy"]
    notes = [
        "",
        f"- model: `{r['model']}`; data: `{r['data']}`",
        f"- cycle err, transfer acc, chroma sim, onset F: {held['metrics_1_3']}",
        f"- paired LSD (vs the target instrument playing the same notes): {held['metric_4']}",
        f"- EQ baseline: {held['eq_baseline']}; identity's cycle error is 0 by construction",
        "- model's transfer accuracy, 95 % Wilson interval over the clips: "
        + ", ".join(f"{k} [{v['low']:.3f}, {v['high']:.3f}]" for k, v in r.get("transfer_interval", {}).items() if v),
        "- paired LSD gain of the model over each baseline (dB, mean and 95 % interval over the pairs): "
        + "; ".join(f"{k}: " + ", ".join(f"{m} {g['mean_db']:+.2f} [{g['low_db']:+.2f}, {g['high_db']:+.2f}]"
                                         for m, g in v.items() if g) for k, v in r.get("paired_lsd_gain", {}).items()),
        "- classifier held-out accuracy (real clips): " + (f"{acc:.4f}" if acc is not None else "unknown"),
        "- classifier accuracy on the untranslated inputs: "
        + ", ".join(f"{k} {v:.3f}" for k, v in c["input_accuracy"].items()),
        "- real-time factor (translation + reconstruction, processing s / audio s): "
        + ", ".join(f"{k} {v:.4f}" for k, v in r["realtime_factor"].items())
        + f" on {r['machine']['device']} ({r['machine']['torch_threads']} torch thread(s), {r['machine']['cpu']}, "
        f"{r['machine']['cpu_count']} cores)",
    ]
    return "\n".join(lines + notes) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True, help="an exported model folder (weights/<name>)")
    ap.add_argument("--data", type=Path, default=REPO_ROOT / "data" / "corpus",
                    help="corpus with <name_a>/, <name_b>/ (and paired/) folders")
    ap.add_argument("--classifier", type=Path, default=CLASSIFIER_DIR)
    ap.add_argument("--out", type=Path, help="where evaluation.json/.md go (default: the model folder)")
    ap.add_argument("--max-clips", type=int, help="at most this many clips per direction (and pairs)")
    ap.add_argument("--eq-files", type=int, default=200, help="training clips per domain for the EQ baseline")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    models = weights.find_models(a.weights)
    if len(models) != 1:
        raise SystemExit(f"error: {a.weights} holds {len(models)} exported models; name one folder")
    try:
        result = evaluate(models[0], a.data, Classifier.load(a.classifier), a.max_clips, a.eq_files)
    except (FileNotFoundError, ValueError) as e:  # DataError and AudioError are ValueErrors
        raise SystemExit(f"error: {e}") from None
    table = to_markdown(result)
    out = a.out or models[0]
    atomic_write_text(out / "evaluation.json", json.dumps(result, indent=2))
    atomic_write_text(out / "evaluation.md", table)
    print(table + f"\nwrote {out / 'evaluation.json'} and {out / 'evaluation.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
