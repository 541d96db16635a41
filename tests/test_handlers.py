"""The app's handlers in-process: reading, validating, translating, drawing, tone, spectra.

Everything runs on the tiny random-weight model from conftest, never the shipped weights.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # app.py is a top-level script, not part of the package
    sys.path.insert(0, str(ROOT))

import app as app_module  # noqa: E402

from cyclegan import audio, handlers, weights  # noqa: E402
from cyclegan.scores import scores_markdown  # noqa: E402

SR = 25_000  # the tiny model's rate (the default SpecConfig)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tone(seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    """A decaying two-partial note: audible, never silent, cheap to make at any rate."""
    t = np.arange(int(seconds * sr)) / sr
    wave = (0.4 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 660 * t)) * np.exp(-t % 1.0)
    return np.repeat(wave[:, None], channels, axis=1).astype(np.float32) if channels > 1 else wave.astype(np.float32)


def check_wav(path: str | Path, expected_len: int) -> np.ndarray:
    wave, sr = sf.read(str(path), dtype="float32")
    assert sr == SR
    assert wave.ndim == 1 and len(wave) == expected_len
    assert np.isfinite(wave).all() and np.abs(wave).max() > 0
    return wave


def check_png(path: str | Path) -> None:
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000


def check_result(result: tuple, expected_len: int) -> None:
    """The six outputs of the `translate` endpoint (the in-process handler adds the what-changed view)."""
    translated, reconstructed, *images, summary = result[:6]
    for wav in (translated, reconstructed):
        check_wav(wav, expected_len)
    assert len(images) == 3
    for img in images:
        check_png(img)
    seconds = expected_len / SR
    assert re.match(r"\*\*(Piano → Guitar|Guitar → Piano)\*\* · relative cycle error \*\*\d+\.\d{3}\*\* "
                    rf"\(0 = the round trip gives back the input\) · {seconds:.1f} s of audio processed in "
                    r"\d+\.\d\d s", summary), summary


# --- the handler, in-process ------------------------------------------------

@pytest.fixture(scope="module")
def tiny_app(tiny_weights: Path) -> handlers.App:
    return handlers.App.load(tiny_weights)


def test_translates_a_bundled_clip(tiny_app: handlers.App, example_clips: dict[str, Path]) -> None:
    clip = example_clips["piano_1"]
    result = tiny_app.translate(str(clip), "piano2guitar")
    check_result(result, len(audio.load(clip, SR, max_channels=2)))
    assert Path(result[0]).name == "piano_1_piano2guitar.wav"


def test_directions_and_examples_come_from_the_weights(tiny_weights: Path) -> None:
    demo = app_module.build_demo(tiny_weights)
    assert isinstance(demo, gr.Blocks)
    found = weights.directions(tiny_weights)
    rows = handlers.example_rows(found, app_module.EXAMPLES)
    sources = {d.value: d.source for d in found}
    assert len(rows) == 6 and all(Path(p).stem.startswith(sources[d] + "_") for p, d in rows)
    assert rows[0][1] == "piano2guitar"  # the default direction's clips come first


def test_scores_come_from_each_models_evaluation(tiny_weights: Path, tmp_path: Path) -> None:
    found = weights.directions(tiny_weights)
    assert scores_markdown(found) == ""  # not evaluated: no panel
    model = tmp_path / "piano_guitar"
    shutil.copytree(tiny_weights / "piano_guitar", model)
    scores = {"model": {"transfer_accuracy": 0.917, "chroma": 0.848, "paired_lsd_db": 10.92},
              "identity": {"paired_lsd_db": 12.09}, "eq": {"paired_lsd_db": 11.4}}
    laptop = {"model": {"transfer_accuracy": 0.708}}
    (model / "evaluation.json").write_text(json.dumps({"directions": {"piano2guitar": scores},
                                                       "sets": {"heldout-recorded": {"directions": {"piano2guitar": laptop}}}}))
    md = scores_markdown(weights.directions(tmp_path))
    assert "| Piano → Guitar | 92% | 71% | 0.85 | 10.9 dB (untouched input 12.1, fixed EQ 11.4) |" in md
    assert "instruments it never heard, laptop mic" in md
    assert "Guitar → Piano" not in md  # that direction has no scores in the file
    real = {"model": {"transfer_accuracy": 0.958}}  # recorded instruments are preferred to the sample family
    (model / "evaluation.json").write_text(json.dumps({"directions": {"piano2guitar": scores}, "sets": {
        "heldout-recorded": {"directions": {"piano2guitar": laptop}},
        "real-guitar-recorded": {"directions": {"piano2guitar": real}}}}))
    md = scores_markdown(weights.directions(tmp_path))
    assert "| Piano → Guitar | 92% | 96% |" in md and "a recorded electric guitar" in md and "untranslated count" in md
    for known, shown in ((0.75, "75%"), (None, "96%")):  # a misheard input is no success; none known: plain
        (model / "evaluation.json").write_text(json.dumps({"directions": {"piano2guitar": scores}, "sets": {
            "real-guitar-recorded": {"directions": {"piano2guitar": real},
                                     "transfer_on_known": {"piano2guitar": {"accuracy": known}}}}}))
        assert f"| Piano → Guitar | 92% | {shown} |" in scores_markdown(weights.directions(tmp_path))
    unpaired = {k: {**v, "paired_lsd_db": None} for k, v in scores.items()}  # own folders, no paired set
    (model / "evaluation.json").write_text(json.dumps({"directions": {"piano2guitar": unpaired}}))
    assert "| Piano → Guitar | 92% | n/a | 0.85 | n/a (no paired clips) |" in scores_markdown(
        weights.directions(tmp_path))
    (model / "evaluation.json").write_text("{not json")
    assert scores_markdown(weights.directions(tmp_path)) == ""


def _write(path: Path, wave: np.ndarray, sr: int, subtype: str | None = None) -> Path:
    sf.write(str(path), wave, sr, subtype=subtype)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _nan_wav(path: Path) -> Path:
    wave = tone(1.0, SR)
    wave[1000:1100] = np.nan
    _write(path, wave, SR, "FLOAT")
    assert np.isnan(sf.read(str(path))[0]).any()  # soundfile keeps NaN in a float wav
    return path


BAD_INPUTS = {
    # name: (make the file in a folder (None: nothing uploaded), words the error must contain)
    "nothing uploaded": (lambda d: None, "No audio"),
    "silence": (lambda d: _write(d / "silence.wav", np.zeros(SR), SR), "silent"),
    "0.1 s": (lambda d: _write(d / "short.wav", tone(0.1, SR), SR), "at least 0.25 s"),
    "text renamed .wav": (lambda d: _bytes(d / "notes.wav", b"just some text, not audio\n" * 50),
                          "not a readable audio file"),
    "garbage bytes": (lambda d: _bytes(d / "noise.wav", np.random.default_rng(0).bytes(5000)),
                      "not a readable audio file"),
    "empty file": (lambda d: _bytes(d / "empty.wav", b""), "empty"),
    "NaN samples": (lambda d: _nan_wav(d / "nan.wav"), "NaN"),
    "3 channels": (lambda d: _write(d / "three.wav", tone(1.0, SR, channels=3), SR), "3 channels"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_a_plain_gradio_error(tiny_app: handlers.App, tmp_path: Path, name: str) -> None:
    make, words = BAD_INPUTS[name]
    path = make(tmp_path)
    with pytest.raises(gr.Error) as err:
        tiny_app.translate(str(path) if path else None, "piano2guitar")
    assert words in err.value.message
    assert "Traceback" not in err.value.message


def test_unknown_direction_is_a_gradio_error(tiny_app: handlers.App, example_clips: dict[str, Path]) -> None:
    with pytest.raises(gr.Error, match="Unknown direction"):
        tiny_app.translate(str(example_clips["piano_1"]), "banjo2kazoo")


@pytest.mark.parametrize("rate", [8_000, 192_000])
def test_any_sample_rate_is_resampled(tiny_app: handlers.App, tmp_path: Path, rate: int) -> None:
    path = _write(tmp_path / f"tone_{rate}.wav", tone(1.0, rate, channels=2), rate)
    result = tiny_app.translate(str(path), "guitar2piano")
    check_result(result, len(audio.load(path, SR, max_channels=2)))


def test_long_clip_is_trimmed_with_a_warning(tiny_app: handlers.App, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(handlers.gr, "Warning", lambda message, *a, **k: warnings.append(message))
    path = _write(tmp_path / "long.wav", tone(70.0, SR), SR)
    result = tiny_app.translate(str(path), "piano2guitar")
    check_result(result, int(handlers.MAX_SECONDS * SR))
    assert len(warnings) == 1 and "70.0 s" in warnings[0] and "60 s" in warnings[0]




# --- progress, the what-changed view, honest input, tone -------------------------

def test_progress_names_every_stage_in_order(tiny_app: handlers.App, example_clips: dict[str, Path]) -> None:
    seen: list[tuple[float, str]] = []
    tiny_app.translate(str(example_clips["piano_1"]), "piano2guitar",
                       progress=lambda share, desc: seen.append((share, desc)))
    stages = [desc for _, desc in seen]
    assert stages[0] == "Reading audio" and stages[-1] == "Drawing"
    assert stages.index("Translating") < stages.index("Reconstructing") < stages.index("Drawing")
    shares = [share for share, _ in seen]
    assert shares == sorted(shares) and 0 <= shares[0] and shares[-1] < 1


def test_what_changed_view(tiny_app: handlers.App, tiny_weights: Path, example_clips: dict[str, Path],
                           tmp_path: Path) -> None:
    *_, (diff, curves) = tiny_app.translate(str(example_clips["piano_1"]), "piano2guitar")
    check_png(diff)
    assert set(curves["curve"]) == {"input (piano)", "translation (guitar)"}  # no spectra saved: no third curve
    assert len(curves) == 2 * 256 and curves["frequency (Hz)"].max() == pytest.approx(SR / 2, rel=0.01)
    model = tmp_path / "piano_guitar"
    shutil.copytree(tiny_weights / "piano_guitar", model)
    cfg = weights.read_config(model)
    weights.save_spectra(model, {"piano": np.full(256, 10.0), "guitar": np.full(256, 100.0)}, cfg)
    *_, (_, curves) = handlers.App.load(tmp_path).translate(str(example_clips["piano_1"]), "piano2guitar")
    trained = curves[curves["curve"] == "guitar, training average"]["level (dB)"]
    assert len(trained) == 256 and np.allclose(trained, trained.iloc[0])


def _cut(src: Path, dest: Path, share: float) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[:int(len(data) * share)])
    return dest


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_truncated_file_is_translated_with_a_warning(tiny_app: handlers.App, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(handlers.gr, "Warning", lambda message, *a, **k: warnings.append(message))
    whole = tmp_path / f"whole.{fmt.lower()}"
    sf.write(str(whole), tone(4.0, SR), SR, format=fmt, subtype="PCM_16")
    cut = _cut(whole, tmp_path / f"cut.{fmt.lower()}", 1 / 3)
    result = tiny_app.translate(str(cut), "piano2guitar")
    read = len(sf.read(str(result[0]))[0]) / SR
    assert 1.0 < read < 1.5  # what was there, not silence padded to 4 s
    assert len(warnings) == 1 and f"only its first {read:.2f} s of 4.00 s could be decoded" in warnings[0]
    assert warnings[0] in result[5]  # the summary keeps it on screen


def test_truncated_ogg_is_translated_with_a_warning(tiny_app: handlers.App, tmp_path: Path,
                                                    example_clips: dict[str, Path]) -> None:
    cut = _cut(example_clips["piano_1"], tmp_path / "piano_cut.ogg", 1 / 3)
    result = tiny_app.translate(str(cut), "piano2guitar")
    read = len(sf.read(str(result[0]))[0]) / SR
    assert f"ends without an end-of-stream mark): only {read:.2f} s could be decoded" in result[5]


def test_an_upload_is_checked_when_it_arrives(tiny_app: handlers.App, tmp_path: Path,
                                              example_clips: dict[str, Path]) -> None:
    assert tiny_app.check(str(example_clips["piano_1"])) == "Ready: 4.0 s of audio. Press **Translate**."
    for name in ("text renamed .wav", "silence", "0.1 s"):
        make, words = BAD_INPUTS[name]
        with pytest.raises(gr.Error) as err:
            tiny_app.check(str(make(tmp_path)))
        assert words in err.value.message


def test_strength_choice(tiny_app: handlers.App, example_clips: dict[str, Path]) -> None:
    clip = str(example_clips["piano_1"])
    one, two = (sf.read(tiny_app.translate(clip, "piano2guitar", strength=s)[0])[0] for s in (1.0, 2.0))
    assert one.shape == two.shape and np.abs(one - two).max() > 1e-3
    with pytest.raises(gr.Error, match="Strength 2.5 is out of range; use 1 \\(one pass\\) to 2 \\(two\\)."):
        tiny_app.translate(clip, "piano2guitar", strength=2.5)


def test_tone_choice(tiny_app: handlers.App, example_clips: dict[str, Path]) -> None:
    clip = str(example_clips["piano_1"])
    clean = sf.read(tiny_app.translate(clip, "piano2guitar")[0])[0]
    driven = sf.read(tiny_app.translate(clip, "piano2guitar", tone="driven")[0])[0]
    assert clean.shape == driven.shape and np.abs(clean - driven).max() > 0.05
    with pytest.raises(gr.Error, match="not available for Guitar → Piano"):
        tiny_app.translate(str(example_clips["guitar_1"]), "guitar2piano", tone="driven")
    with pytest.raises(gr.Error, match="'fuzz' is not available"):
        tiny_app.translate(clip, "piano2guitar", tone="fuzz")


def test_spectra_are_saved_next_to_the_config(tiny_weights: Path, tmp_path: Path, toy_domains: tuple) -> None:
    from cyclegan import spectra  # the CLI: reads training files, so it lives on the training side

    model = tmp_path / "piano_guitar"
    shutil.copytree(tiny_weights / "piano_guitar", model)
    assert weights.load_spectra(model) == {}  # absent: the view leaves the curve out
    path = spectra.compute(model, toy_domains[0].parent)
    assert path == model / weights.SPECTRA_FILE and path.stat().st_size < 20_000
    loaded = weights.load_spectra(model)
    assert set(loaded) == {"piano", "guitar"} and all(v.shape == (256,) for v in loaded.values())
    assert loaded["guitar"].sum() > loaded["piano"].sum()  # square waves carry more energy than decaying sines
    with pytest.raises(ValueError, match="256"):
        weights.save_spectra(model, {"piano": np.ones(10)}, weights.read_config(model))
    path.write_text("{broken")
    assert weights.load_spectra(model) == {}


def test_images_are_drawn_at_display_size(tiny_app: handlers.App, tmp_path: Path) -> None:
    from cyclegan import plots

    values = np.arange(12.0).reshape(2, 6)
    assert plots.pool(values, (2, 3)).tolist() == [[1, 3, 5], [7, 9, 11]]
    assert plots.pool(values, (2, 3), mean=True).tolist() == [[0.5, 2.5, 4.5], [6.5, 8.5, 10.5]]
    assert plots.pool(values, (4, 6))[:, 0].tolist() == [0, 0, 6, 6]  # shorter axes are repeated
    path = _write(tmp_path / "long.wav", tone(50.0, SR), SR)
    result = tiny_app.translate(str(path), "piano2guitar")
    from PIL import Image

    (w, h), (left, top, right, bottom) = plots.PLOT_SIZE, plots.MARGIN
    for png in (*result[2:5], result[6][0]):
        with Image.open(png) as im:
            assert im.size == (left + w + right, top + h + bottom) and im.mode == "RGBA"
            assert im.getpixel((1, 1))[3] == 0  # transparent around the plot: it sits on either theme


def test_decay_choice(tiny_app: handlers.App, example_clips: dict[str, Path], monkeypatch) -> None:
    clip = str(example_clips["guitar_1"])
    d = tiny_app.direction("guitar2piano")
    with pytest.raises(gr.Error, match="Decay shapes translations into no instrument, not Guitar → Piano"):
        tiny_app.translate(clip, "guitar2piano", decay=True)  # the tiny model's config names none
    monkeypatch.setattr(tiny_app.translators[d.model_dir].cfg, "decay_into", "piano")
    plain, faded = (sf.read(tiny_app.translate(clip, "guitar2piano", decay=v)[0])[0] for v in (False, True))
    assert plain.shape == faded.shape and np.abs(plain - faded).max() > 1e-3
    with pytest.raises(gr.Error, match="Decay shapes translations into piano, not Piano → Guitar"):
        tiny_app.translate(clip, "piano2guitar", decay=True)
