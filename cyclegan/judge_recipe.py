"""How the instrument classifier (the judge) is trained and validated, leave-one-family-out.

    python -m cyclegan.classifier [--out weights/instrument_classifier] [--steps 1500] [--lofo-steps 500]

Training data: the classifier's own corpus (data/classifier-corpus, its training families), the
families' other piano and guitar programs and plucked-string guitars (cyclegan/variety.py), each
clip also re-recorded under a random laptop-like draw. Before the final judge is trained on all of
it, each training family in turn is left out: a judge trained on the others is scored on that
family's clips, plain and re-recorded. Those figures, not the held-out family, chose the recipe.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import audio
from .classifier import DEFAULT_DIR, Classifier, ClassifierConfig, fit, recorded_copy
from .store import REPO_ROOT, repo_relative

COPIES = ("plain", "recorded")


@dataclass
class Example:
    """One clip's log-mels (plain and re-recorded), its class index and its sample family."""
    specs: tuple[torch.Tensor, ...]
    label: int
    family: str


def _examples(clf: Classifier, waves, seed: int, progress: bool, desc: str) -> list[Example]:
    """`waves`: (wave, class name, family) triples, each also re-recorded under a seeded laptop draw."""
    sr, out = clf.cfg.sample_rate, []
    for i, (wave, cls, family) in enumerate(tqdm(waves, desc=desc, leave=False, disable=not progress)):
        copy = recorded_copy(wave, sr, int(np.random.SeedSequence([seed, i]).generate_state(1)[0]))
        out.append(Example((clf.frontend(wave, sr), clf.frontend(copy, sr)), clf.classes.index(cls), family))
    return out


def _train(cfg: ClassifierConfig, classes: list[str], examples: list[Example], progress: bool) -> Classifier:
    torch.manual_seed(cfg.seed)
    clf = Classifier(cfg, classes)
    return fit(clf, [s for e in examples for s in e.specs], [e.label for e in examples for _ in e.specs], progress)


def _accuracy(clf: Classifier, examples: list[Example], copy: int) -> float:
    return float(np.mean([int(clf.logits(e.specs[copy]).argmax()) == e.label for e in examples]))


def leave_one_family_out(cfg: ClassifierConfig, classes: list[str], corpus: list[Example], extra: list[Example],
                         progress: bool = True) -> dict[str, dict[str, float]]:
    """For each family of `corpus`: train on every other family (corpus and `extra` clips) and score
    that family's corpus clips, plain and re-recorded."""
    result = {}
    for family in sorted({e.family for e in corpus}):
        train = [e for e in corpus + extra if e.family != family]
        clf = _train(cfg, classes, train, progress)
        test = [e for e in corpus if e.family == family]
        result[family] = {name: round(_accuracy(clf, test, k), 4) for k, name in enumerate(COPIES)}
        result[family]["clips"] = len(test)
        print(f"left out {family}: {result[family]}")
    return result


def _corpus_waves(data: Path, files: dict[str, list[Path]], sr: int) -> list[tuple[np.ndarray, str, str]]:
    manifest = {c["path"]: c["family"] for c in json.loads((data / "manifest.json").read_text())["clips"]}
    return [(audio.load(p, sr), cls, manifest[p.relative_to(data).as_posix()]) for cls, ps in files.items() for p in ps]


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m cyclegan.classifier", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--data", type=Path, default=REPO_ROOT / "data" / "classifier-corpus",
                    help="the classifier's corpus (rendered here if missing)")
    ap.add_argument("--classes", nargs="+", default=["piano", "guitar"])
    ap.add_argument("--minutes", type=float, default=30.0, help="minutes per class to render")
    ap.add_argument("--seed", type=int, default=1234, help="corpus seed (the CycleGAN's corpus uses 0)")
    ap.add_argument("--held-out", type=float, default=0.25)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lofo-steps", type=int, default=500, help="steps per leave-one-family-out fold (0: skip)")
    ap.add_argument("--variety", type=int, default=40, help="clips per extra GM program and training family")
    ap.add_argument("--plucked", type=int, default=200, help="plucked-string guitar clips")
    ap.add_argument("--no-render", action="store_true", help="use --data as it is")
    ap.add_argument("--check", type=Path, action="append", default=[REPO_ROOT / "data" / "corpus" / "paired"],
                    help="extra folders with one sub-folder per class to report accuracy on")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from .corpus import HELD_OUT_FAMILY, ensure_corpus, installed_soundfonts
    from .data import hold_out
    from .layout import EVAL_SETS
    from .soundfonts import resolve_soundfonts
    from .variety import plucked_guitars, render_variety

    a = _args(argv)
    torch.set_num_threads(1)
    if not a.no_render:
        ensure_corpus(a.data, a.minutes, installed_soundfonts(), seed=a.seed)
    cfg, probe = ClassifierConfig(steps=a.steps), Classifier(ClassifierConfig(), a.classes)
    train, held = {}, {}
    for c, files in class_files(a.data, a.classes).items():
        train[c], held[c] = hold_out(files, a.held_out, seed=0)
    corpus = _examples(probe, _corpus_waves(a.data, train, cfg.sample_rate), a.seed, True, "corpus clips")
    variety = render_variety(resolve_soundfonts(installed_soundfonts()), a.variety, a.seed, cfg.sample_rate)
    variety += plucked_guitars(a.plucked, a.seed, cfg.sample_rate)
    extra = _examples(probe, [(c.wave, c.domain, c.family) for c in variety if c.domain in a.classes],
                      a.seed + 1, True, "variety clips")
    lofo = (leave_one_family_out(ClassifierConfig(steps=a.lofo_steps), a.classes, corpus, extra)
            if a.lofo_steps else None)
    clf = _train(cfg, a.classes, corpus + extra, True)
    info = clf.info
    info["train_files"] = {c: len(v) for c, v in train.items()}
    info["train_variety"] = {"programs_per_family": a.variety, "plucked": a.plucked, "clips": len(extra)}
    info["held_out_accuracy"] = clf.accuracy(held, "held-out")
    info["held_out_files"] = {c: len(v) for c, v in held.items()}
    info["leave_one_family_out"] = lofo and {"steps": a.lofo_steps, "families": lofo}
    # the family no model trains on, plain and under held-out recording conditions: a judge
    # that only knows its training families would make the transfer figures meaningless
    family = {name: clf.accuracy(class_files(a.data / name, a.classes), name)
              for name in EVAL_SETS if all((a.data / name / c).is_dir() for c in a.classes)}
    info["held_out_family"] = HELD_OUT_FAMILY if family else None
    info["held_out_family_accuracy"] = family
    manifest = a.data / "manifest.json"
    info["training_data"] = {
        "corpus": repo_relative(a.data),
        "settings": json.loads(manifest.read_text())["settings"] if manifest.is_file() else None,
        "split": f"{1 - a.held_out:.0%} train / {a.held_out:.0%} held out per class (seeded shuffle, seed 0), "
                 f"training families only (never {HELD_OUT_FAMILY})",
        "note": "real (untranslated) renderings, each also re-recorded; none of it is the CycleGAN's corpus"}
    checks = {repo_relative(f): clf.accuracy(class_files(f, a.classes), str(f)) for f in [a.data / "paired", *a.check]
              if all((f / c).is_dir() for c in a.classes)}
    info["other_accuracy"] = checks
    clf.save(a.out)
    print(f"held-out accuracy {info['held_out_accuracy']:.4f} on {sum(info['held_out_files'].values())} clips; "
          f"trained in {info['train_seconds']} s")
    for k, v in {**family, **checks}.items():
        print(f"accuracy on {k}: {v:.4f}")
    print(f"saved {a.out}")
    return 0


def class_files(root: Path, classes: list[str]) -> dict[str, list[Path]]:
    from .layout import domain_files

    return {c: domain_files(root, c) for c in classes}
