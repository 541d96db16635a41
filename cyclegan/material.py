"""Seeded musical material as people play it: lines, chords, strums, arpeggios and 2-4 voice passages.

Everything is drawn from a numpy Generator, so the same seed always gives the same notes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RANGES = {"piano": (36, 96), "guitar": (40, 88)}  # guitar: E2..E6
PIANO_WIDE = (21, 108)  # occasionally use the whole keyboard
SCALES = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 2, 3, 5, 7, 9, 10),
          (0, 2, 3, 5, 7, 8, 11), (0, 2, 4, 7, 9), (0, 3, 5, 7, 10))
# Real piano playing is mostly polyphonic; guitar playing is lines, strums and picked chords.
KINDS = {"piano": {"melody": 1, "bass": 1, "chords": 2, "arpeggio": 2, "voices": 4, "comping": 3},
         "guitar": {"melody": 3, "bass": 1, "chords": 1, "strum": 3, "arpeggio": 2, "voices": 2}}
GUITAR_SPAN = 16  # semitones one hand can hold on a guitar neck


@dataclass(frozen=True)
class Note:
    pitch: int
    start: float
    end: float
    velocity: int


@dataclass
class Feel:
    """Tempo, articulation and dynamics shared by every voice of one clip."""
    beat: float
    legato: float
    velocity: int
    swell: float  # velocity change per second (a crescendo or a diminuendo)

    def vel(self, rng: np.random.Generator, t: float, spread: int = 10) -> int:
        return int(np.clip(self.velocity + self.swell * t + rng.integers(-spread, spread + 1), 1, 127))


def _line(rng: np.random.Generator, pool: np.ndarray, t: float, end: float, feel: Feel,
          durs: tuple[float, ...], max_step: int) -> list[Note]:
    """A monophonic random walk over the scale degrees in `pool`."""
    i, notes = int(rng.integers(len(pool))), []
    while t < end:
        d = float(rng.choice(durs)) * feel.beat
        notes.append(Note(int(pool[i]), t, t + d * feel.legato, feel.vel(rng, t, 12)))
        i = int(np.clip(i + rng.integers(-max_step, max_step + 1), 0, len(pool) - 1))
        t += d
    return notes


def _chord(rng: np.random.Generator, pool: np.ndarray, size: int, span: int | None) -> list[int]:
    """A diatonic stack of thirds (triad to ninth) from a random root, within `span` semitones."""
    root = int(rng.integers(max(1, len(pool) - 2 * size)))
    tones = sorted({int(pool[min(root + 2 * k, len(pool) - 1)]) for k in range(size)})
    return [p for p in tones if span is None or p - tones[0] <= span]


def _chords(rng: np.random.Generator, pool: np.ndarray, t: float, end: float, feel: Feel,
            mode: str, span: int | None) -> list[Note]:
    """Block chords, strums (staggered onsets, down or up) or arpeggios (broken, up and down)."""
    notes: list[Note] = []
    while t < end:
        tones = _chord(rng, pool, int(rng.integers(3, 6)), span)
        bar = float(rng.choice([2, 4])) * feel.beat
        if mode == "arpeggio":
            if rng.random() < 0.5:
                tones += tones[-2:0:-1]
            step = float(rng.choice([0.25, 0.5])) * feel.beat
            for k in range(int(round(bar / step))):
                s = t + k * step
                notes.append(Note(tones[k % len(tones)], s, s + feel.legato * step * rng.uniform(1, 3), feel.vel(rng, s)))
        else:
            step = float(rng.choice([0.5, 1, 2])) * feel.beat
            gap = float(rng.uniform(0.008, 0.03)) if mode == "strum" else 0.0
            for k in range(int(round(bar / step))):
                s, order = t + k * step, tones if mode != "strum" or k % 2 == 0 else tones[::-1]
                for j, p in enumerate(order):
                    notes.append(Note(p, s + j * gap, s + feel.legato * step, feel.vel(rng, s)))
        t += bar
    return notes


def _voices(rng: np.random.Generator, pool: np.ndarray, t0: float, end: float, feel: Feel, n: int,
            span: int | None) -> list[Note]:
    """n voices in their own registers: together (chorale) or each in its own rhythm (counterpoint)."""
    width = len(pool) if span is None else min(len(pool), max(n + 2, span * len(pool) // 48))
    lo = int(rng.integers(max(1, len(pool) - width + 1)))
    bands = np.array_split(pool[lo:lo + width], n)
    if rng.random() < 0.5:  # chorale: one rhythm, every voice moves by step
        notes, t, idx = [], t0, [int(rng.integers(len(b))) for b in bands]
        while t < end:
            d = float(rng.choice((1, 1, 2))) * feel.beat
            for b, v in zip(bands, range(n)):
                idx[v] = int(np.clip(idx[v] + rng.integers(-1, 2), 0, len(b) - 1))
                notes.append(Note(int(b[idx[v]]), t, t + d * feel.legato, feel.vel(rng, t, 8)))
            t += d
        return notes
    durs = ((0.5, 1, 1), (1, 2), (2, 4), (0.5, 0.5, 1))
    return [x for k, b in enumerate(bands) for x in _line(rng, b, t0, end, feel, durs[k % len(durs)], 2)]


def _comping(rng: np.random.Generator, pool: np.ndarray, t0: float, end: float, feel: Feel) -> list[Note]:
    """Piano: a left-hand bass line under right-hand chords or a melody."""
    low, high = pool[: len(pool) // 3 + 2], pool[len(pool) // 3:]
    left = _line(rng, low, t0, end, feel, (1, 2), 3)
    right = (_chords(rng, high, t0, end, feel, "chords", None) if rng.random() < 0.5
             else _line(rng, high, t0, end, feel, (0.5, 1, 1, 2), 2))
    return left + right


def make_notes(rng: np.random.Generator, lo: int, hi: int, seconds: float, instrument: str = "piano") -> list[Note]:
    """Seeded material in a random key, tempo and dynamic, of a kind the instrument plays."""
    kinds = KINDS[instrument]
    kind = str(rng.choice(list(kinds), p=np.array(list(kinds.values())) / sum(kinds.values())))
    feel = Feel(beat=60.0 / rng.uniform(50, 180),
                legato=rng.uniform(0.35, 0.6) if rng.random() < 0.3 else rng.uniform(0.85, 1.1),
                velocity=int(rng.integers(30, 120)), swell=float(rng.uniform(-12, 12)))
    scale, root = SCALES[rng.integers(len(SCALES))], int(rng.integers(12))
    pool = np.array([p for p in range(lo, hi + 1) if (p - root) % 12 in scale])
    t0, end = float(rng.uniform(0, 0.25)), seconds - 0.1
    span = GUITAR_SPAN if instrument == "guitar" else None
    low, mid = pool[: len(pool) // 3 + 2], pool[len(pool) // 5: -len(pool) // 5]
    if kind == "melody":
        notes = _line(rng, mid, t0, end, feel, (0.5, 1, 1, 1.5, 2), 2)
    elif kind == "bass":
        notes = _line(rng, low, t0, end, feel, (1, 1, 2), 4)
    elif kind == "voices":
        notes = _voices(rng, pool, t0, end, feel, int(rng.integers(2, 5)), span)
    elif kind == "comping":
        notes = _comping(rng, pool, t0, end, feel)
    else:
        notes = _chords(rng, mid, t0, end, feel, kind, span)
    # >= 60 ms: shorter "notes" are clicks, not articulation
    notes = [Note(n.pitch, round(n.start, 4), round(min(max(n.end, n.start + 0.06), seconds), 4), n.velocity)
             for n in notes if n.start < end]
    return sorted(notes, key=lambda n: (n.start, n.pitch))


def polyphony(notes: list[Note]) -> float:
    """Mean number of notes sounding while any is (1.0 = a single line)."""
    edges = sorted([(n.start, 1) for n in notes] + [(n.end, -1) for n in notes])
    sounding, busy, total, last = 0, 0.0, 0.0, 0.0
    for t, step in edges:
        if sounding:
            busy, total = busy + (t - last), total + sounding * (t - last)
        sounding, last = sounding + step, t
    return total / busy if busy else 0.0
