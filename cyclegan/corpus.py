"""Render an unpaired piano / electric-guitar corpus (plus a paired test set) from GM SoundFonts.

    python -m cyclegan.corpus --out data/corpus --minutes 30 [--soundfont FILE ...] [--no-system-soundfonts]

Material is generated from seeded numpy Generators and rendered with TinySoundFont, so the
same settings always give byte-identical wav files.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import tinysoundfont
from scipy.signal import butter, fftconvolve, lfilter
from tqdm import tqdm

VERSION = 4  # bump when the material or rendering changes, so ensure_corpus re-renders
# Guitar = clean electric (jazz, clean).  A one-to-one translator cannot choose among very
# different guitar sounds: with muted (28), overdriven (29) and distortion (30) in the domain
# the generator settled on a bright overdrive-like blend that matched no real guitar (v1 corpus).
PROGRAMS = {"piano": (0, 1, 2), "guitar": (26, 27)}
# Presets left out of one SoundFont (its clips use the domain's next program).  TimGM6mb's clean
# guitar puts a bright, broadband pick click on every note; on the paired set it is 12.6-14.5 dB
# (log-spectral distance, same notes) from each of the other three guitar presets, which sit
# 9.7-11.3 dB apart.  With it in the domain the generator learnt to add a click to every piano
# note, which no other guitar has (corpus v3).
SKIP = {("TimGM6mb.sf2", "guitar"): (27,)}
FAMILY_BASE = {"piano": 0, "guitar": 24}  # last resort when a SoundFont lacks all domain presets
RANGES = {"piano": (36, 96), "guitar": (40, 88)}  # guitar: E2..E6
PIANO_WIDE = (21, 108)  # occasionally use the whole keyboard
SCALES = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 2, 3, 5, 7, 9, 10),
          (0, 2, 3, 5, 7, 8, 11), (0, 2, 4, 7, 9), (0, 3, 5, 7, 10))
KINDS = ("melody", "chords", "arpeggio", "bass", "phrase")
CHUNK_S = 0.4  # longest single generate() call
FLUSH_S = 0.05  # lets voices cut by reset() die so a clip never depends on the one before


class CorpusError(ValueError):
    """Bad corpus input (missing or invalid SoundFont, unsafe output dir)."""


@dataclass(frozen=True)
class Note:
    pitch: int
    start: float
    end: float
    velocity: int


@dataclass(frozen=True)
class CorpusSettings:
    minutes: float
    soundfonts: tuple[str, ...]
    seed: int = 0
    sample_rate: int = 25000
    clip_seconds: float = 4.0
    paired: int = 24
    version: int = VERSION

    def as_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))  # tuples -> lists, as stored in the manifest


# Used besides TimGM6mb wherever installed, by train.py and by this module's CLI alike, so that a
# selection or check corpus rendered by hand has the training corpus's presets.
SYSTEM_SOUNDFONTS = (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),)  # Debian: fluid-soundfont-gm


def installed_soundfonts() -> list[Path]:
    return [p for p in SYSTEM_SOUNDFONTS if p.is_file()]


def default_soundfont() -> Path:
    import pretty_midi  # only for its bundled TimGM6mb.sf2

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def resolve_soundfonts(extra: list[Path] | None = None) -> tuple[str, ...]:
    """The default SoundFont plus `extra`, validated, deduplicated, in order."""
    paths: list[str] = []
    for p in [default_soundfont(), *(extra or [])]:
        p = Path(p).expanduser()
        if not p.is_file():
            raise CorpusError(f"SoundFont not found: {p}")
        with open(p, "rb") as f:
            head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise CorpusError(f"not a valid SoundFont (.sf2) file: {p}")
        if str(p.resolve()) not in paths:
            paths.append(str(p.resolve()))
    return tuple(paths)


# ---------------------------------------------------------------- musical material
def _line(rng: np.random.Generator, pool: np.ndarray, t: float, end: float, beat: float,
          durs: tuple[float, ...], max_step: int, legato: float, vel: int) -> list[Note]:
    """A monophonic random walk over the scale degrees in `pool`."""
    i, notes = int(rng.integers(len(pool))), []
    while t < end:
        d = float(rng.choice(durs)) * beat
        v = int(np.clip(vel + rng.integers(-12, 13), 1, 127))
        notes.append(Note(int(pool[i]), t, t + d * legato, v))
        i = int(np.clip(i + rng.integers(-max_step, max_step + 1), 0, len(pool) - 1))
        t += d
    return notes


def _chords(rng: np.random.Generator, pool: np.ndarray, t: float, end: float, beat: float,
            legato: float, vel: int, arpeggio: bool) -> list[Note]:
    """Diatonic triads / sevenths, struck in a rhythm or broken into arpeggios."""
    notes: list[Note] = []
    while t < end:
        root = int(rng.integers(max(1, len(pool) - 6)))
        tones = sorted({int(pool[min(root + k, len(pool) - 1)]) for k in range(0, int(rng.choice([5, 7])), 2)})
        if arpeggio and rng.random() < 0.5:
            tones += tones[-2:0:-1]  # up and down
        bar = float(rng.choice([2, 4])) * beat
        step = float(rng.choice([0.25, 0.5] if arpeggio else [0.5, 1, 2])) * beat
        for k in range(int(round(bar / step))):
            for p in [tones[k % len(tones)]] if arpeggio else tones:
                v = int(np.clip(vel + rng.integers(-10, 11), 1, 127))
                notes.append(Note(p, t + k * step, t + (k + legato) * step, v))
        t += bar
    return notes


def make_notes(rng: np.random.Generator, lo: int, hi: int, seconds: float) -> list[Note]:
    """Seeded melody / chords / arpeggio / bass line / two-voice phrase in a random key."""
    beat = 60.0 / rng.uniform(60, 160)
    scale, root = SCALES[rng.integers(len(SCALES))], int(rng.integers(12))
    pool = np.array([p for p in range(lo, hi + 1) if (p - root) % 12 in scale])
    kind = KINDS[rng.integers(len(KINDS))]
    legato = rng.uniform(0.35, 0.6) if rng.random() < 0.35 else rng.uniform(0.85, 1.05)  # staccato / legato
    vel, t0, end = int(rng.integers(45, 115)), float(rng.uniform(0, 0.25)), seconds - 0.1
    low, mid, high = pool[: len(pool) // 3 + 2], pool[len(pool) // 5: -len(pool) // 5], pool[len(pool) // 2:]
    if kind == "melody":
        notes = _line(rng, mid, t0, end, beat, (0.5, 1, 1, 1.5, 2), 2, legato, vel)
    elif kind == "bass":
        notes = _line(rng, low, t0, end, beat, (1, 1, 2), 4, legato, vel)
    elif kind == "phrase":
        notes = (_line(rng, high, t0, end, beat, (0.5, 1, 1, 2), 2, legato, vel)
                 + _line(rng, low, t0, end, beat, (2, 4), 3, 1.0, vel - 15))
    else:
        notes = _chords(rng, mid, t0, end, beat, legato, vel, arpeggio=kind == "arpeggio")
    # >= 60 ms: shorter "notes" are clicks, not articulation
    notes = [Note(n.pitch, round(n.start, 4), round(min(max(n.end, n.start + 0.06), seconds), 4), n.velocity)
             for n in notes if n.start < end]
    return sorted(notes, key=lambda n: (n.start, n.pitch))


# ---------------------------------------------------------------- rendering
class Renderer:
    """One loaded Synth per SoundFont (loading is the slow part, so it is cached)."""

    def __init__(self, soundfonts: tuple[str, ...], sample_rate: int):
        self.sample_rate, self.synths = sample_rate, {}
        for path in soundfonts:
            synth = tinysoundfont.Synth(samplerate=sample_rate)
            try:
                sfid = synth.sfload(path)
            except (RuntimeError, tinysoundfont.SoundFontException) as e:
                raise CorpusError(f"could not load SoundFont {path}: {e}") from None
            self.synths[path] = (synth, sfid)
            for domain in PROGRAMS:  # fail early rather than mid-render
                self.program(path, domain, PROGRAMS[domain][0])

    def program(self, path: str, domain: str, program: int) -> int:
        """`program` if the SoundFont has it, else another of the domain, else the GM family base."""
        synth, sfid = self.synths[path]
        skip = SKIP.get((Path(path).name, domain), ())
        for p in (program, *PROGRAMS[domain], FAMILY_BASE[domain]):
            if p not in skip and synth.sfpreset_name(sfid, 0, p) is not None:
                return p
        raise CorpusError(f"SoundFont {path} has no {domain} preset (GM {PROGRAMS[domain]})")

    def render(self, path: str, program: int, notes: list[Note], seconds: float) -> np.ndarray:
        synth, sfid = self.synths[path]
        sr, total = self.sample_rate, int(round(seconds * self.sample_rate))
        synth.soundfonts[sfid].reset()  # Synth has no reset(); the low-level SoundFont does
        synth.generate_simple(int(FLUSH_S * sr))
        synth.program_select(0, sfid, 0, program)
        # note-offs sort before note-ons at the same instant so repeated pitches re-trigger
        events = sorted([(int(round(n.start * sr)), 1, n.pitch, n.velocity) for n in notes]
                        + [(int(round(n.end * sr)), 0, n.pitch, 0) for n in notes])
        out, pos = np.zeros((total, 2), np.float32), 0
        for when, on, pitch, vel in [*events, (total, -1, 0, 0)]:
            while pos < min(when, total):
                n = min(min(when, total) - pos, int(CHUNK_S * sr))
                out[pos:pos + n] = np.frombuffer(synth.generate_simple(n), np.float32).reshape(n, 2)
                pos += n
            if on == 1:
                synth.noteon(0, pitch, vel)
            elif on == 0:
                synth.noteoff(0, pitch)
        return out.mean(axis=1)


def augment(x: np.ndarray, rng: np.random.Generator, sr: int,
            hiss: np.random.Generator | None = None) -> tuple[np.ndarray, dict]:
    """Light room / EQ / gain / noise variation so a model cannot key on one dry sample set.

    `rng` draws everything, the noise samples too unless `hiss` is given: two recordings in one
    room share its settings but never the noise itself."""
    x = x.astype(np.float64)
    p = {"reverb_wet": rng.uniform(0.02, 0.15), "reverb_s": rng.uniform(0.15, 0.6),
         "tilt_hz": min(rng.uniform(800, 4000), 0.4 * sr), "tilt_gain": rng.uniform(-0.5, 0.5),
         "peak_db": rng.uniform(-12, -1), "noise_db": rng.uniform(-70, -55)}
    t = np.arange(int(p["reverb_s"] * sr)) / sr
    ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / p["reverb_s"])  # -60 dB at the end
    wet = fftconvolve(x, ir)[: len(x)]
    x = x + p["reverb_wet"] * wet * np.sqrt(np.mean(x**2) / max(np.mean(wet**2), 1e-20))
    b, a = butter(1, p["tilt_hz"], "high", fs=sr)  # x + g*highpass(x) = first-order shelf
    x = x + p["tilt_gain"] * lfilter(b, a, x)
    x = x * 10 ** (p["peak_db"] / 20) / max(np.abs(x).max(), 1e-9)
    x = x + (hiss or rng).standard_normal(len(x)) * 10 ** (p["noise_db"] / 20)
    x = x / max(1.0, np.abs(x).max() / 0.999)  # never clip
    return x, {k: round(float(v), 4) for k, v in p.items()}


# ---------------------------------------------------------------- corpus
def _jobs(s: CorpusSettings) -> list[dict]:
    """Every clip to render. Each domain (and the paired set) draws from its own seed stream,
    so unpaired piano and guitar never share material."""
    n = int(np.ceil(s.minutes * 60 / s.clip_seconds))
    jobs = [{"domain": d, "set": "unpaired", "path": f"{d}/{i:04d}.wav", "stream": k + 1, "i": i}
            for k, d in enumerate(PROGRAMS) for i in range(n)]
    jobs += [{"domain": d, "set": "paired", "path": f"paired/{d}/{i:03d}.wav", "stream": 3, "i": i}
             for i in range(s.paired) for d in PROGRAMS]
    for j, job in enumerate(jobs):
        job["seed"] = int(np.random.SeedSequence([s.seed, job.pop("stream"), job.pop("i")]).generate_state(1)[0])
        job["soundfont"] = s.soundfonts[(j // (2 if job["set"] == "paired" else 1)) % len(s.soundfonts)]
    return jobs


def _render_job(r: Renderer, s: CorpusSettings, job: dict, out: Path) -> dict:
    domain, paired = job["domain"], job["set"] == "paired"
    lo, hi = RANGES["guitar"] if paired else RANGES[domain]  # paired: playable by both
    mat = np.random.default_rng([job["seed"], 0])
    if domain == "piano" and not paired and mat.random() < 0.15:
        lo, hi = PIANO_WIDE
    notes = make_notes(mat, lo, hi, s.clip_seconds)
    own = np.random.default_rng([job["seed"], 1 + list(PROGRAMS).index(domain)])
    program = r.program(job["soundfont"], domain, int(own.choice(PROGRAMS[domain])))
    # a pair shares one room / EQ / level / noise-level draw (its seed), so the pair differs
    # only in the instrument and the test clips come from the training distribution; each
    # keeps its own noise samples (with shared ones, output = input would match the reference
    # exactly wherever the noise dominates, and win the paired distance there)
    room = np.random.default_rng([job["seed"], 99]) if paired else own
    audio, aug = augment(r.render(job["soundfont"], program, notes, s.clip_seconds), room, s.sample_rate,
                         hiss=own if paired else None)
    sf.write(out / job["path"], audio, s.sample_rate, subtype="PCM_16")
    return {**job, "program": program, "augment": aug,
            "notes": [[n.pitch, n.start, n.end, n.velocity] for n in notes]}


def _build(s: CorpusSettings, out: Path) -> float:
    """Render everything into `out`; returns the speed in x real time."""
    r = Renderer(s.soundfonts, s.sample_rate)
    for d in PROGRAMS:
        (out / d).mkdir(parents=True)
        (out / "paired" / d).mkdir(parents=True)
    t0, clips = time.perf_counter(), []
    for job in tqdm(_jobs(s), desc="rendering corpus", unit="clip"):
        clips.append(_render_job(r, s, job, out))
    speed = len(clips) * s.clip_seconds / max(time.perf_counter() - t0, 1e-9)
    manifest = {"settings": s.as_json(),
                "paired_augmentation": "one draw per pair, shared by both instruments; own noise samples",
                "clips": clips}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return speed


def render_corpus(out: Path, minutes: float, soundfonts: list[Path] | None = None, seed: int = 0,
                  sample_rate: int = 25000, clip_seconds: float = 4.0, paired: int = 24) -> Path:
    """Render (or re-render) a corpus into `out`. `soundfonts` are used in addition to the
    default TimGM6mb.sf2; clips are spread round-robin over all of them."""
    s = CorpusSettings(minutes, resolve_soundfonts(soundfonts), seed, sample_rate, clip_seconds, paired)
    out = Path(out)
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


def ensure_corpus(out: Path, minutes: float, soundfonts: list[Path] | None = None, seed: int = 0,
                  sample_rate: int = 25000, clip_seconds: float = 4.0, paired: int = 24) -> Path:
    """Reuse `out` if its manifest has these exact settings, else render it."""
    s = CorpusSettings(minutes, resolve_soundfonts(soundfonts), seed, sample_rate, clip_seconds, paired)
    try:
        if json.loads((Path(out) / "manifest.json").read_text())["settings"] == s.as_json():
            return Path(out)
    except (OSError, ValueError, KeyError):
        pass
    return render_corpus(out, minutes, soundfonts, seed, sample_rate, clip_seconds, paired)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, required=True, help="minutes of audio per domain")
    ap.add_argument("--soundfont", type=Path, action="append", default=[],
                    help="extra .sf2 (repeatable), used besides the default TimGM6mb.sf2")
    ap.add_argument("--no-system-soundfonts", action="store_true",
                    help=f"leave out the installed system SoundFonts ({', '.join(map(str, SYSTEM_SOUNDFONTS))}), "
                         "which train.py's built-in corpus uses")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample-rate", type=int, default=25000)
    ap.add_argument("--clip-seconds", type=float, default=4.0)
    ap.add_argument("--paired", type=int, default=24, help="clips in the paired test set")
    a = ap.parse_args(argv)
    try:
        extra = ([] if a.no_system_soundfonts else installed_soundfonts()) + a.soundfont
        render_corpus(a.out, a.minutes, extra, a.seed, a.sample_rate, a.clip_seconds, a.paired)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
