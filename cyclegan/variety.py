"""More instruments of each class for the instrument classifier: the training families' other
General-MIDI piano and guitar programs, played with the corpus's material and recording conditions.

A judge that has heard only a family's one or two clean-guitar presets learns those samples, and
hears another family's clean guitar as a piano; nylon, steel and palm-muted guitars (and the
clean guitar the CycleGAN's corpus leaves out for its click) teach it what plucked strings share.
Rendered in memory from seeds, so the same settings always give the same clips.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pedalboard import HighpassFilter, Pedalboard, PeakFilter
from scipy.signal import lfilter

from . import conditions, tone
from .material import RANGES, Note, make_notes
from .soundfonts import HELD_OUT_FAMILY, Renderer, SoundFont

# programs beyond the corpus's own (pianos 0-2; clean 27 and jazz 26 guitars; driven 29/30)
PROGRAMS = {"piano": (3,), "guitar": (24, 25, 27, 28)}  # honky-tonk; nylon, steel, clean (more takes), palm-muted


@dataclass
class Clip:
    wave: np.ndarray
    domain: str
    family: str
    program: int


def render_variety(fonts: tuple[SoundFont, ...], per_program: int, seed: int, sample_rate: int = 25_000,
                   seconds: float = 4.0, programs: dict[str, tuple[int, ...]] = PROGRAMS) -> list[Clip]:
    """`per_program` clips of every extra program each training family has (never the held-out
    family), under studio recording conditions."""
    fonts = tuple(f for f in fonts if f.family.name != HELD_OUT_FAMILY)
    r, clips = Renderer(fonts, sample_rate), []
    for k, font in enumerate(fonts):
        for domain, progs in programs.items():
            for program in progs:
                if not r.has(font.name, program):
                    continue
                for i in range(per_program):
                    rng = np.random.default_rng([seed, k, program, i])
                    notes = make_notes(rng, *RANGES[domain], seconds, domain)
                    cond = conditions.draw(rng, "studio")
                    dry = r.render(font.name, program, notes, seconds, cond["detune_cents"])
                    clips.append(Clip(conditions.record(dry, cond, sample_rate, rng), domain, font.family.name, program))
    return clips


def pluck(notes: list[Note], seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A Karplus-Strong plucked string per note (a noise burst in a damped delay line, as
    scipy's IIR filter), damped at the note's end; a guitar no SoundFont sampled."""
    total = int(seconds * sample_rate)
    out = np.zeros(total)
    bright, loss = rng.uniform(0.2, 0.9), rng.uniform(0.990, 0.998)
    for n in notes:
        start = int(n.start * sample_rate)
        period = max(2, int(round(sample_rate / (440.0 * 2 ** ((n.pitch - 69) / 12)))))
        burst = rng.uniform(-1, 1, period)
        burst = lfilter([bright], [1, bright - 1], burst)  # a softer pick is a darker burst
        a = np.zeros(period + 2)
        a[0], a[period], a[period + 1] = 1.0, -loss / 2, -loss / 2
        hold = int((n.end - n.start) * sample_rate)
        length = min(total - start, hold + int(0.2 * sample_rate))
        if length <= period:
            continue
        y = lfilter([1.0], a, np.pad(burst, (0, length - period)))
        y[hold:] *= np.exp(-np.arange(len(y) - hold) / (0.03 * sample_rate))  # the fretting hand lets go
        out[start:start + length] += y * n.velocity / 127
    return out.astype(np.float32)


def plucked_di(notes: list[Note], seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A plucked-string guitar through a pickup-like EQ, at a hot DI level (half full scale)."""
    x = pluck(notes, seconds, sample_rate, rng)
    pickup = Pedalboard([HighpassFilter(80.0), PeakFilter(float(rng.uniform(1_500, 4_000)), float(rng.uniform(2, 8)), 1.0)])
    x = pickup(x[None], sample_rate)[0]
    return (x / max(np.abs(x).max(), 1e-9) * 0.5).astype(np.float32)


def plucked_guitars(n: int, seed: int, sample_rate: int = 25_000, seconds: float = 4.0) -> list[Clip]:
    """`n` plucked-string guitar clips through a pickup-like EQ, half of them through a random amp
    chain, under studio recording conditions."""
    clips = []
    for i in range(n):
        rng = np.random.default_rng([seed, 99, i])
        notes = make_notes(rng, *RANGES["guitar"], seconds, "guitar")
        cond = conditions.draw(rng, "studio")
        x = plucked_di(notes, seconds, sample_rate, rng)
        if i % 2:
            x = tone.amp_chain(float(rng.uniform(14, 36)), float(rng.uniform(70, 160)), float(rng.uniform(700, 2_500)),
                               float(rng.uniform(-3, 6)), float(rng.uniform(3_500, 9_000)))(x[None], sample_rate)[0]
        clips.append(Clip(conditions.record(x, cond, sample_rate, rng), "guitar", "plucked", -1))
    return clips
