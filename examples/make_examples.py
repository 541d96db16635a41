"""Regenerate the example clips: python examples/make_examples.py [--out examples]

piano_k.ogg and guitar_k.ogg play the same notes (like the paired test set) so the
timbre difference is easy to hear; each pair is recorded under one studio-like draw of the corpus's
recording conditions. (The bundled files were made with an earlier corpus version's material.)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from cyclegan import conditions, material, soundfonts  # noqa: E402

SAMPLE_RATE, SECONDS = 25000, 4.0
# (material seed, piano program, guitar program): every piano preset; TimGM6mb's jazz guitar (its
# clean guitar is left out of the corpus, see corpus.SKIP)
CLIPS = ((6, 0, 26), (2, 1, 26), (15, 2, 26))  # a two-voice phrase, an arpeggio, chords


def make_examples(out: Path) -> list[Path]:
    r = soundfonts.Renderer(soundfonts.resolve_soundfonts(), SAMPLE_RATE)
    font = next(iter(r.synths))  # the bundled TimGM6mb.sf2, so anyone gets the same files
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for k, (seed, *programs) in enumerate(CLIPS, 1):
        notes = material.make_notes(np.random.default_rng(seed), *material.RANGES["guitar"], SECONDS, "guitar")
        for domain, program in zip(("piano", "guitar"), programs):
            audio = r.render(font, program, notes, SECONDS)
            room = np.random.default_rng([seed, 99])  # one draw per pair, own noise
            audio = conditions.record(audio, conditions.draw(room, "studio"), SAMPLE_RATE, np.random.default_rng([seed, program]))
            path = out / f"{domain}_{k}.ogg"
            sf.write(path, audio, SAMPLE_RATE, format="OGG", subtype="VORBIS")
            written.append(path)
    return written


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    for p in make_examples(ap.parse_args().out):
        print(f"{p}  {p.stat().st_size // 1024} KB")
