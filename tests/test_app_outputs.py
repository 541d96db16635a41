"""What the app hands to Gradio: wavs served as written, the what-changed difference exactly pooled."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # app.py is a top-level script, not part of the package
    sys.path.insert(0, str(ROOT))

import app as app_module  # noqa: E402

from cyclegan import plots  # noqa: E402
from cyclegan.config import SpecConfig  # noqa: E402


def test_wav_player_serves_our_wavs_without_probing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   example_clips: dict[str, Path]) -> None:
    from gradio import processing_utils

    wav = tmp_path / "clip_piano2guitar.wav"
    sf.write(str(wav), np.zeros(2500, np.float32), 25_000, subtype="PCM_16")
    player = app_module.WavPlayer(type="filepath", interactive=False)
    assert player.get_block_name() == "audio"  # the page's own audio player
    probed: list[str] = []
    monkeypatch.setattr(processing_utils, "audio_is_playable", lambda p: probed.append(p) or True)
    served = player.postprocess(str(wav))
    assert (served.path, served.orig_name, probed) == (str(wav), "clip_piano2guitar.wav", [])
    assert player.postprocess(None) is None
    other = player.postprocess(str(example_clips["piano_1"]))  # anything else: Gradio's own checks
    assert probed == [str(example_clips["piano_1"])] and other.orig_name == "piano_1.ogg"


def _reference_change(after: np.ndarray, before: np.ndarray, spec: SpecConfig, cols: int) -> np.ndarray:
    """The definition: for each pixel column, the mean over its frames of the dB difference."""
    frames = after.shape[1]
    edges = np.linspace(0, frames, min(cols, frames) + 1).astype(int)
    return np.stack([(plots.to_db(after[:, a:b], spec) - plots.to_db(before[:, a:b], spec)).mean(1)
                     for a, b in zip(edges[:-1], edges[1:])], axis=1)


@pytest.mark.parametrize("frames,block", [(7, 4096), (480, 4096), (1954, 4096), (1954, 100), (3001, 1)])
def test_column_change_is_the_mean_difference_per_pixel(frames: int, block: int) -> None:
    spec, rng = SpecConfig(), np.random.default_rng(frames)
    after, before = (rng.random((spec.n_freq, frames), dtype=np.float32) * 30 + 1e-4 for _ in range(2))
    got = plots.column_change_db(after, before, spec, 480, block=block)
    assert got.shape == (spec.n_freq, min(480, frames))
    np.testing.assert_allclose(got, _reference_change(after, before, spec, 480), atol=1e-4)
