"""How far apart real instruments are on the evaluation's paired log-spectral distance.

    python bench/preset_distance.py [--data data/corpus]

Re-renders the notes of every pair in DATA/paired with each guitar preset of the corpus's
SoundFonts (skipped ones included), under the pair's own room draw but fresh noise, and prints
the mean distance between presets, and from the pair's piano to each preset.  A translation
that is as close to the reference as another real guitar preset is about as good as one
instrument model can be when the guitar domain holds several presets.
"""
from __future__ import annotations

import argparse
import json
import sys
from itertools import product
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cyclegan import audio, corpus  # noqa: E402
from cyclegan.config import SpecConfig  # noqa: E402
from cyclegan.metrics import log_spectral_distance  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("data/corpus"))
    data = ap.parse_args().data
    m = json.loads((data / "manifest.json").read_text())
    sr, spec = m["settings"]["sample_rate"], SpecConfig(sample_rate=m["settings"]["sample_rate"])
    fonts = m["settings"]["soundfonts"]
    r = corpus.Renderer(tuple(fonts), sr)
    presets = list(product(fonts, corpus.PROGRAMS["guitar"]))
    names = [f"{Path(f).stem[:8]}:{p}" for f, p in presets]
    between = np.zeros((len(presets), len(presets)))
    piano = np.zeros(len(presets))
    pairs = [c for c in m["clips"] if c["set"] == "paired" and c["domain"] == "guitar"]
    for c in pairs:
        notes = [corpus.Note(int(p), s, e, int(v)) for p, s, e, v in c["notes"]]
        waves = []
        for k, (font, program) in enumerate(presets):
            room, hiss = np.random.default_rng([c["seed"], 99]), np.random.default_rng([c["seed"], 1000 + k])
            dry = r.render(font, program, notes, m["settings"]["clip_seconds"])
            waves.append(corpus.augment(dry, room, sr, hiss=hiss)[0].astype(np.float32))
        src = audio.load(data / c["path"].replace("guitar", "piano", 1), sr)
        for i, j in product(range(len(presets)), repeat=2):
            if i != j:
                between[i, j] += log_spectral_distance(waves[i], waves[j], spec) / len(pairs)
        piano += [log_spectral_distance(src, w, spec) / len(pairs) for w in waves]
    print(f"paired log-spectral distance, dB, mean over {len(pairs)} pairs of {data}")
    print("rendering \\ reference  " + "  ".join(f"{n:>12}" for n in names))
    for n, row in zip(names, between):
        print(f"{n:>21}  " + "  ".join(f"{v:12.2f}" for v in row))
    print(f"{'the pair’s piano':>21}  " + "  ".join(f"{v:12.2f}" for v in piano))


if __name__ == "__main__":
    main()
