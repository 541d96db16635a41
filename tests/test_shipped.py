"""The model that ships in weights/: it loads, translates the bundled clips, and stays small."""
import json
from pathlib import Path

import numpy as np
import pytest

from cyclegan import audio, weights
from cyclegan.translate import Translator
from conftest import ROOT

SHIPPED = ROOT / "weights" / "piano_guitar"
RECORDED = ROOT / "tests" / "data" / "shipped_outputs.json"


def test_weights_folder_is_small_and_pickle_free():
    files = [p for p in (ROOT / "weights").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 40 * 2**20
    assert not [p for p in files if p.suffix in (".pt", ".pth", ".pkl", ".ckpt", ".bin")]


def test_shipped_model_card_gives_the_rebuild_commands_and_its_evaluated_scores():
    card = (SHIPPED / "README.md").read_text()
    for command in ("python train.py --cycle-loss", "python -m cyclegan.pick",
                    "python -m cyclegan.evaluate --weights weights/piano_guitar"):
        assert command in card
    assert len(card.splitlines()) <= 120
    result = json.loads((SHIPPED / "evaluation.json").read_text())
    strength = weights.read_config(SHIPPED).strength  # the scores are those of the strength the app uses
    assert result["strength"] == strength and f"Its `strength` is {strength:g}" in card
    assert {"piano2guitar", "guitar2piano"} <= set(result["directions"])  # and piano2guitar_driven with --tone driven
    for key, label in (("piano2guitar", "piano→guitar"), ("guitar2piano", "guitar→piano")):
        m = result["directions"][key]["model"]
        ci = result["transfer_interval"][key]
        row = (f"| {label} | model | {m['cycle_error']:.3f} | {m['transfer_accuracy']:.3f} "
               f"[{ci['low']:.3f}, {ci['high']:.3f}] | {m['chroma']:.3f} | {m['onset_f']:.3f} | {m['paired_lsd_db']:.2f} |")
        assert row in card
    labels = {"heldout-family": "held-out family", "heldout-recorded": "held-out, laptop",
              "real-piano": "recorded grand", "real-piano-recorded": "grand, laptop",
              "real-guitar": "recorded pair", "real-guitar-recorded": "pair, laptop"}
    assert set(result["sets"]) == set(labels)  # every held-out set, each a row of the card's table
    for name, label in labels.items():
        r = result["sets"][name]
        gain = r["paired_lsd_gain"]["guitar2piano"]["identity"]
        cells = (f"{r['directions']['piano2guitar']['model']['transfer_accuracy']:.3f}",
                 f"{gain['mean_db']:+.2f} [{gain['low_db']:+.2f}, {gain['high_db']:+.2f}]".replace("-", "−"))
        assert any(line.startswith(f"| {label} |") and all(c in line for c in cells) for line in card.splitlines()), name


def test_shipped_model_translates_the_bundled_examples(example_clips):
    assert [d.value for d in weights.directions()] == ["piano2guitar", "guitar2piano"]
    tr = Translator(SHIPPED, device="cpu")
    for stem, reverse in (("piano_1", False), ("guitar_1", True)):
        wave = audio.load(example_clips[stem], tr.spec.sample_rate)
        res = tr.translate(wave, reverse)
        assert res.translated.shape == wave.shape and np.isfinite(res.translated).all()
        assert np.sqrt(np.mean(res.translated ** 2)) > 1e-3
        assert 0 <= res.cycle_error < 1
        assert not np.allclose(res.translated, wave, atol=1e-3)  # it changes the sound


PROJECTIONS = 16


def fingerprint(x: np.ndarray) -> list[float]:
    """PROJECTIONS seeded random projections of a waveform (a one-sample shift or a 0.1 % gain moves them)
    and its RMS in 64 blocks: what a bit-exact hash checks, less the CPU's choice of kernels."""
    x = np.asarray(x, np.float64)
    proj = np.random.default_rng(0).standard_normal((PROJECTIONS, len(x))) @ x / np.sqrt(len(x))
    return [*proj, *(float(np.sqrt(np.mean(b ** 2))) for b in np.array_split(x, 64))]


def shipped_outputs(examples: dict[str, Path]) -> dict:
    """Fingerprints of the shipped model's outputs on each example, and its cycle errors."""
    tr = Translator(SHIPPED, device="cpu")
    got, errors = {}, {}
    for stem, clip in examples.items():
        res = tr.translate(audio.load(clip, tr.spec.sample_rate), reverse=stem.startswith("guitar"))
        for key in ("translated", "reconstructed"):
            got[f"{stem}/{key}"] = fingerprint(getattr(res, key))
        errors[stem] = res.cycle_error
    return {"fingerprints": got, "cycle_error": errors}


def same(a: list[float], b: list[float]) -> bool:
    """Equal up to float rounding, relative to the signal's level: between an Intel and an AMD CPU
    the outputs differ by up to 2.2e-5 of it (a reconstruction, two generators deep); a 0.1 % gain
    moves it by 1e-3."""
    scale = max(np.abs(b[PROJECTIONS:]).max(), 1e-9)  # the block RMS values
    return bool(np.allclose(a, b, rtol=0, atol=1e-4 * scale))


def test_shipped_model_output_matches_the_recorded_fingerprints(example_clips):
    """Refactors must not change what the shipped model produces beyond float rounding (the
    CPU's kernels differ by up to ~2e-5 of the level). A new model records its own:
    `PYTHONPATH=. python tests/test_shipped.py`."""
    expected = json.loads(RECORDED.read_text())
    got = shipped_outputs(example_clips)
    assert set(got["fingerprints"]) == set(expected["fingerprints"]) and len(got["fingerprints"]) == 12
    assert [k for k, v in got["fingerprints"].items() if not same(v, expected["fingerprints"][k])] == []
    assert got["cycle_error"] == {k: pytest.approx(v, abs=1e-5) for k, v in expected["cycle_error"].items()}


def test_fingerprints_tell_a_shifted_or_scaled_output_from_float_rounding() -> None:
    x = np.random.default_rng(1).standard_normal(50_000) * np.hanning(50_000)
    assert same(fingerprint(x * (1 + 2e-5) + 1e-7), fingerprint(x))
    assert not same(fingerprint(x * 1.001), fingerprint(x))
    assert not same(fingerprint(np.roll(x, 1)), fingerprint(x))


if __name__ == "__main__":
    from conftest import EXAMPLES

    RECORDED.write_text(json.dumps(shipped_outputs({p.stem: p for p in sorted(EXAMPLES.glob("*.ogg"))}), indent=1))
    print(f"wrote {RECORDED}")
