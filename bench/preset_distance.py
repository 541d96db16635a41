"""How far apart real instruments are on the evaluation's paired log-spectral distance.

    python bench/preset_distance.py [--data data/corpus]

Re-renders the notes of every group in DATA/paired with each clean and driven guitar preset of
the corpus's training SoundFonts, under the group's own recording draw but fresh noise, and
prints the mean distance between presets, and from the group's piano to each preset. A
translation as close to the reference as another real guitar preset is about as good as one
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
from cyclegan import audio, conditions, corpus, soundfonts  # noqa: E402
from cyclegan.config import SpecConfig  # noqa: E402
from cyclegan.material import Note  # noqa: E402
from cyclegan.metrics import log_spectral_distance  # noqa: E402
from cyclegan.store import REPO_ROOT  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO_ROOT / "data" / "corpus")
    data = ap.parse_args().data
    m = json.loads((data / "manifest.json").read_text())
    sr, spec = m["settings"]["sample_rate"], SpecConfig(sample_rate=m["settings"]["sample_rate"])
    wanted = {f["sha256"] for f in m["settings"]["soundfonts"] if f["family"] != soundfonts.HELD_OUT_FAMILY}
    local = sorted(soundfonts.SONIVOX.parent.glob("*.sf[23]"))  # Sonivox, and any family fetched there
    offered = soundfonts.resolve_soundfonts([*soundfonts.installed_soundfonts(), *local])
    fonts = [f for f in offered if f.sha256 in wanted]
    r = soundfonts.Renderer(tuple(fonts), sr)
    presets = [(f.name, p) for f, p in product(fonts, (*corpus.CLEAN, *corpus.DRIVEN)) if r.has(f.name, p)]
    names = [f"{Path(f).stem[:8]}:{p}" for f, p in presets]
    between, piano = np.zeros((len(presets), len(presets))), np.zeros(len(presets))
    groups = [c for c in m["clips"] if c["set"] == "paired" and c["domain"] == "guitar" and c["tone"] in corpus.CLEAN.values()]
    for c in groups:
        notes = [Note(int(p), s, e, int(v)) for p, s, e, v in c["notes"]]
        waves = [conditions.record(r.render(font, program, notes, m["settings"]["clip_seconds"],
                                            c["conditions"]["detune_cents"]),
                                   c["conditions"], sr, np.random.default_rng([c["seed"], 1000 + k]))
                 for k, (font, program) in enumerate(presets)]
        src = audio.load(data / c["path"].replace("guitar", "piano", 1), sr)
        for i, j in product(range(len(presets)), repeat=2):
            if i != j:
                between[i, j] += log_spectral_distance(waves[i], waves[j], spec) / len(groups)
        piano += [log_spectral_distance(src, w, spec) / len(groups) for w in waves]
    print(f"paired log-spectral distance, dB, mean over {len(groups)} groups of {data}")
    print("rendering \\ reference  " + "  ".join(f"{n:>12}" for n in names))
    for n, row in zip(names, between):
        print(f"{n:>21}  " + "  ".join(f"{v:12.2f}" for v in row))
    print(f"{'the pair’s piano':>21}  " + "  ".join(f"{v:12.2f}" for v in piano))


if __name__ == "__main__":
    main()
