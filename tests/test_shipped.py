"""The model that ships in weights/: it loads, translates the bundled clips, and stays small."""
import json

import numpy as np

from cyclegan import audio, weights
from cyclegan.translate import Translator
from conftest import ROOT

SHIPPED = ROOT / "weights" / "piano_guitar"


def test_weights_folder_is_small_and_pickle_free():
    files = [p for p in (ROOT / "weights").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 40 * 2**20
    assert not [p for p in files if p.suffix in (".pt", ".pth", ".pkl", ".ckpt", ".bin")]


def test_shipped_model_has_a_card_with_its_scores():
    card = (SHIPPED / "README.md").read_text()
    assert "python train.py" in card and "transfer" in card.lower()
    result = json.loads((SHIPPED / "evaluation.json").read_text())
    assert set(result["directions"]) == {"piano2guitar", "guitar2piano"}


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
