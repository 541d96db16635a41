"""Render the piano / electric-guitar corpus (unpaired training sets, paired test sets and the
held-out evaluation sets) from General-MIDI SoundFonts, recorded under random conditions.

    python -m cyclegan.corpus --out data/corpus --minutes 30 [--soundfont FILE ...] [--no-system-soundfonts]

Layout (every folder holds mono 16-bit wav clips; manifest.json says what each one is):
    piano/  guitar/ (clean, jazz)  guitar-driven/ (overdriven, distorted, amp)  guitar-driven-clean/
    guitar-other/ (nylon, steel, muted, plucked-string model, TimGM6mb's clean)  guitar-other-clean/
    paired/{piano,guitar,guitar-driven}/            the same notes on each, one recording draw
    heldout-family/...  heldout-recorded/...        the held-out family, plain / under held-out conditions
    real-piano/...  real-piano-recorded/...         the same with a recorded grand as the piano (cyclegan/sampler.py)
    real-guitar/...  real-guitar-recorded/...       that grand and a recorded electric guitar (clean; amp)
Material is drawn from seeded numpy Generators, so the same settings give byte-identical files.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm import tqdm

from . import conditions, sampler, tone
from .layout import EVAL_SETS, RECORDED
from .material import PIANO_WIDE, RANGES, make_notes
from .soundfonts import (HELD_OUT_FAMILY, SYSTEM_SOUNDFONTS, CorpusError, Renderer, SoundFont, installed_soundfonts,
                         resolve_soundfonts)
from .variety import plucked_di

VERSION = 8  # bump when the material or rendering changes, so ensure_corpus re-renders
PIANO_PROGRAMS = (0, 1, 2)  # acoustic grand, bright, electric grand
CLEAN = {27: "clean", 26: "jazz"}
DRIVEN = {29: "overdriven", 30: "distorted"}
DRIVEN_TONES = ("overdriven", "distorted", "amp")  # amp: a clean guitar through a random amp chain
# TimGM6mb's clean guitar puts a broadband pick click on every note (12.6-14.5 dB from every other
# guitar preset on the paired distance); with it in the domain a model clicked on every piano note.
SKIP = {("TimGM6mb.sf2", 27)}
FOLDERS = {"piano": "piano", "clean": "guitar", "driven": "guitar-driven", "twin": "guitar-driven-clean",
           "other": "guitar-other", "other_twin": "guitar-other-clean"}
# guitar->piano inputs beyond the guitar domain (the clean twin is the cycle's target): a family's
# nylon, steel and palm-muted guitars, a Karplus-Strong string through a pickup EQ, the clicking clean guitar
OTHER = {24: "nylon", 25: "steel", 28: "muted", -1: "plucked"}
RECORDINGS = {"piano": sampler.GRAND, "guitar": sampler.GUITAR}  # the held-out sets' recorded instruments


@dataclass(frozen=True)
class CorpusSettings:
    minutes: float
    soundfonts: tuple[SoundFont, ...]
    seed: int = 0
    sample_rate: int = 25000
    clip_seconds: float = 4.0
    paired: int = 24
    heldout: int = 48  # clips per folder of each held-out set
    version: int = VERSION

    def as_json(self) -> dict:
        return {"minutes": self.minutes, "soundfonts": [f.as_json() for f in self.soundfonts], "seed": self.seed,
                "sample_rate": self.sample_rate, "clip_seconds": self.clip_seconds, "paired": self.paired,
                "heldout": self.heldout, "held_out_family": HELD_OUT_FAMILY,
                "recorded": [sampler.fingerprint(r) for r in RECORDINGS.values()] if self.held_out_font else None,
                "version": self.version}

    @property
    def training_fonts(self) -> tuple[SoundFont, ...]:
        return tuple(f for f in self.soundfonts if f.family.name != HELD_OUT_FAMILY)

    @property
    def held_out_font(self) -> SoundFont | None:
        return next((f for f in self.soundfonts if f.family.name == HELD_OUT_FAMILY), None)


def _seed(s: CorpusSettings, stream: int, i: int) -> int:
    return int(np.random.SeedSequence([s.seed, stream, i]).generate_state(1)[0])


def _group(root: str, i: int, parts: tuple[str, ...], font: SoundFont, seed: int, space: str, paired: bool) -> dict:
    """One draw of notes, presets and recording conditions, rendered once per part. `root` is ""
    for the training folders and their paired test set, else a held-out set's folder."""
    folder = "/".join(x for x in (root, "paired" if paired else "") if x)
    name = "-".join(x for x in (root or ("" if paired else "train"), "paired" if paired else "") if x)
    width = 3 if paired or root else 4
    g = {"set": name, "space": space, "font": font.name, "family": font.family.name, "seed": seed,
         "parts": {p: f"{folder + '/' if folder else ''}{FOLDERS[p]}/{i:0{width}d}.wav" for p in parts}}
    for instrument in RECORDED.get(root, ()):  # the rest of such a set is the held-out family's
        g[f"{instrument}_font"] = RECORDINGS[instrument].name
    return g


def _jobs(s: CorpusSettings) -> list[dict]:
    """Every group to render; each folder draws from its own seed stream, so no two folders share material."""
    train = s.training_fonts
    if not train:
        raise CorpusError(f"no training SoundFont: every one given belongs to the held-out family {HELD_OUT_FAMILY}")
    n = int(np.ceil(s.minutes * 60 / s.clip_seconds))

    def train_group(i: int, parts: tuple[str, ...], stream: int, paired: bool = False) -> dict:
        return _group("", i, parts, train[i % len(train)], _seed(s, stream, i), "studio", paired)

    jobs = [train_group(i, (part,), k + 1) for k, part in enumerate(("piano", "clean")) for i in range(n)]
    jobs += [train_group(i, ("driven", "twin"), 4) for i in range(n // 2)]
    jobs += [train_group(i, ("piano", "clean", "driven"), 3, True) for i in range(s.paired)]
    jobs += [train_group(i, ("other", "other_twin"), 5) for i in range(n // 4)]
    held = s.held_out_font
    for k, (root, space) in enumerate(EVAL_SETS.items() if held else ()):
        for j, part in enumerate(("piano", "clean", "driven")):
            jobs += [_group(root, i, (part,), held, _seed(s, 10 + 4 * k + j, i), space, False) for i in range(s.heldout)]
        jobs += [_group(root, i, ("piano", "clean", "driven"), held, _seed(s, 13 + 4 * k, i), space, True)
                 for i in range(s.paired)]
    return jobs


def _presets(r: Renderer, font: str, rng: np.random.Generator) -> dict:
    """The group's piano program, clean program and driven tone (with its amp settings)."""
    piano = r.first(font, (int(rng.choice(PIANO_PROGRAMS)), *PIANO_PROGRAMS, 0))
    skip = tuple(p for f, p in SKIP if f == font)
    clean = r.first(font, (int(rng.choice(list(CLEAN))), *CLEAN, 24, 25), skip)
    driven = DRIVEN_TONES[int(rng.integers(len(DRIVEN_TONES)))]
    program = {"overdriven": 29, "distorted": 30}.get(driven)
    amp = {"drive_db": rng.uniform(14, 36), "low_cut_hz": rng.uniform(70, 160), "mid_hz": rng.uniform(700, 2500),
           "mid_db": rng.uniform(-3, 6), "cabinet_hz": rng.uniform(3500, 6500)}
    if program is None or not r.has(font, program):
        driven, program = "amp", clean
    return {"piano": piano, "clean": clean, "driven": driven, "driven_program": program,
            "amp": {k: round(float(v), 3) for k, v in amp.items()},
            "other_seed": int(rng.integers(2 ** 32))}  # drawn last: the draws above stay as they were


def _dry(r: Renderer, font: str, part: str, pre: dict, notes: list, s: CorpusSettings, cents: float) -> tuple:
    """(dry audio, program, tone, amp settings) of one part of a group."""
    if part == "piano":
        return r.render(font, pre["piano"], notes, s.clip_seconds, cents), pre["piano"], None, None
    if part == "other":
        return _other(r, font, notes, s, cents, np.random.default_rng(pre["other_seed"]))
    if part in ("clean", "twin", "other_twin"):
        return r.render(font, pre["clean"], notes, s.clip_seconds, cents), pre["clean"], CLEAN.get(pre["clean"], "clean"), None
    x = r.render(font, pre["driven_program"], notes, s.clip_seconds, cents)
    if pre["driven"] != "amp":
        return x, pre["driven_program"], pre["driven"], None
    x = (x / max(np.abs(x).max(), 1e-9) * 0.5).astype(np.float32)  # the amp's drive assumes a hot DI level
    return tone.amp_chain(**pre["amp"])(x[None], s.sample_rate)[0], pre["driven_program"], "amp", pre["amp"]


def _other(r: Renderer, font: str, notes: list, s: CorpusSettings, cents: float, rng: np.random.Generator) -> tuple:
    """One of the family's other guitars (OTHER, and any SKIP preset it has); the string model
    plays in tune (it has no pitch wheel: the recording draw's detune applies to the twin only)."""
    choices = [p for p in OTHER if p < 0 or r.has(font, p)] + [p for f, p in SKIP if f == font]
    program = choices[int(rng.integers(len(choices)))]
    if program < 0:
        return plucked_di(notes, s.clip_seconds, s.sample_rate, rng), -1, "plucked", None
    return r.render(font, program, notes, s.clip_seconds, cents), program, OTHER.get(program, "clean"), None


def _render_group(r: Renderer, s: CorpusSettings, g: dict, out: Path) -> list[dict]:
    mat = np.random.default_rng([g["seed"], 0])
    only_piano = list(g["parts"]) == ["piano"]
    lo, hi = RANGES["piano"] if only_piano else RANGES["guitar"]  # a group with a guitar: playable by both
    if only_piano and mat.random() < 0.15:
        lo, hi = PIANO_WIDE
    notes = make_notes(mat, lo, hi, s.clip_seconds, "piano" if only_piano else "guitar")
    pre = _presets(r, g["font"], np.random.default_rng([g["seed"], 1]))
    if "piano_font" in g:  # a recorded piano has one program
        pre["piano"] = 0
    if "guitar_font" in g:  # so has a recorded guitar; driven, it goes through an amp, as a player's DI would
        pre.update(clean=0, driven="amp", driven_program=0)
    # one draw of the room, microphone, codec and level per group, so a pair differs only in the
    # instrument; each part keeps its own noise samples (with shared ones, output = input would
    # match the reference exactly wherever the noise dominates, and win the paired distance there)
    cond = conditions.draw(np.random.default_rng([g["seed"], 99]), g["space"])
    clips = []
    for k, (part, path) in enumerate(g["parts"].items()):
        font = g.get("piano_font" if part == "piano" else "guitar_font", g["font"])
        dry, program, tone_name, amp = _dry(r, font, part, pre, notes, s, cond["detune_cents"])
        wave = conditions.record(dry, cond, s.sample_rate, np.random.default_rng([g["seed"], 1 + k]))
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        sf.write(out / path, wave, s.sample_rate, subtype="PCM_16")
        clip = {"set": g["set"], "path": path, "domain": "piano" if part == "piano" else "guitar", "tone": tone_name,
                "family": g["family"] if font == g["font"] else font, "soundfont": font, "program": program,
                "seed": g["seed"],
                "conditions": cond, "notes": [[n.pitch, n.start, n.end, n.velocity] for n in notes]}
        if amp:
            clip["amp"] = amp
        twin = {"driven": "twin", "other": "other_twin"}.get(part)
        if twin in g["parts"]:
            clip["clean_twin"] = g["parts"][twin]
        clips.append(clip)
    return clips


def _build(s: CorpusSettings, out: Path) -> float:
    """Render everything into `out`; returns the speed in x real time."""
    recorded = {rec.name: sampler.Sampler(rec, s.sample_rate) for rec in RECORDINGS.values()} if s.held_out_font else {}
    r = Renderer(s.soundfonts, s.sample_rate, recorded)
    for font in s.soundfonts:  # fail early rather than mid-render
        _presets(r, font.name, np.random.default_rng(0))
    t0, clips = time.perf_counter(), []
    for g in tqdm(_jobs(s), desc="rendering corpus", unit="group"):
        clips += _render_group(r, s, g, out)
    speed = len(clips) * s.clip_seconds / max(time.perf_counter() - t0, 1e-9)
    manifest = {"settings": s.as_json(),
                "recording": "one conditions draw per group (a pair, or a driven clip and its clean twin), "
                             "shared by its renderings; each rendering has its own noise samples",
                "clips": clips}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return speed


def render_corpus(out: Path, minutes: float, soundfonts: list[Path] | None = None, **options: Any) -> Path:
    """Render (or re-render) a corpus into `out`. `soundfonts` are used in addition to the default
    TimGM6mb.sf2; training clips are spread round-robin over all but the held-out family. `options`
    are the other fields of CorpusSettings (seed, sample_rate, clip_seconds, paired, heldout)."""
    return _render(CorpusSettings(minutes, resolve_soundfonts(soundfonts), **options), Path(out))


def _render(s: CorpusSettings, out: Path) -> Path:
    if out.exists() and not (out / "manifest.json").exists() and (not out.is_dir() or any(out.iterdir())):
        raise CorpusError(f"refusing to overwrite {out}: not empty and not a corpus")
    out.parent.mkdir(parents=True, exist_ok=True)
    # render beside the target and swap in at the end: an interrupted run leaves no corpus behind
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would otherwise stick to the final corpus
    try:
        speed = _build(s, tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"corpus {out}: rendered at {speed:.0f}x real time")
    return out


def ensure_corpus(out: Path, minutes: float, soundfonts: list[Path] | None = None, **options: Any) -> Path:
    """Reuse `out` if its manifest has these exact settings (SoundFonts by name and checksum), else render it."""
    s = CorpusSettings(minutes, resolve_soundfonts(soundfonts), **options)
    try:
        if json.loads((Path(out) / "manifest.json").read_text())["settings"] == s.as_json():
            return Path(out)
    except (OSError, ValueError, KeyError):
        pass
    return _render(s, Path(out))  # the settings as resolved above: each SoundFont is checksummed once


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, required=True, help="minutes of audio per training folder")
    ap.add_argument("--soundfont", type=Path, action="append", default=[],
                    help="extra .sf2/.sf3 (repeatable), used besides the default TimGM6mb.sf2")
    ap.add_argument("--no-system-soundfonts", action="store_true",
                    help=f"leave out the installed system SoundFonts ({', '.join(map(str, SYSTEM_SOUNDFONTS))}), "
                         "which train.py's built-in corpus uses")
    default = {f.name: f.default for f in fields(CorpusSettings)}
    ap.add_argument("--seed", type=int, default=default["seed"])
    ap.add_argument("--sample-rate", type=int, default=default["sample_rate"])
    ap.add_argument("--clip-seconds", type=float, default=default["clip_seconds"])
    ap.add_argument("--paired", type=int, default=default["paired"], help="groups in each paired test set")
    ap.add_argument("--heldout", type=int, default=default["heldout"], help="clips per folder of each held-out set")
    a = ap.parse_args(argv)
    try:
        extra = ([] if a.no_system_soundfonts else installed_soundfonts()) + a.soundfont
        render_corpus(a.out, a.minutes, extra, seed=a.seed, sample_rate=a.sample_rate, clip_seconds=a.clip_seconds,
                      paired=a.paired, heldout=a.heldout)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
