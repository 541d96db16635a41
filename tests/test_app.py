"""The Gradio app: the handler in-process, a real server through gradio_client, and a real browser.

Everything runs on the tiny random-weight model from conftest, never the shipped weights.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # app.py is a top-level script, not part of the package
    sys.path.insert(0, str(ROOT))

import app as app_module  # noqa: E402
import gradio as gr  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402

from cyclegan import audio, weights  # noqa: E402

SR = 25_000  # the tiny model's rate (the default SpecConfig)
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
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
    translated, reconstructed, *images, summary = result
    for wav in (translated, reconstructed):
        check_wav(wav, expected_len)
    assert len(images) == 3
    for img in images:
        check_png(img)
    assert "cycle error" in summary


# --- the handler, in-process ------------------------------------------------

@pytest.fixture(scope="module")
def tiny_app(tiny_weights: Path) -> app_module.App:
    return app_module.App.load(tiny_weights)


def test_translates_a_bundled_clip(tiny_app: app_module.App, example_clips: dict[str, Path]) -> None:
    clip = example_clips["piano_1"]
    result = tiny_app.translate(str(clip), "piano2guitar")
    check_result(result, len(audio.load(clip, SR, max_channels=2)))
    assert Path(result[0]).name == "piano_1_piano2guitar.wav"


def test_directions_and_examples_come_from_the_weights(tiny_weights: Path) -> None:
    demo = app_module.build_demo(tiny_weights)
    assert isinstance(demo, gr.Blocks)
    found = weights.directions(tiny_weights)
    rows = app_module.example_rows(found)
    sources = {d.value: d.source for d in found}
    assert len(rows) == 6 and all(Path(p).stem.startswith(sources[d] + "_") for p, d in rows)
    assert rows[0][1] == "piano2guitar"  # the default direction's clips come first


def test_scores_come_from_each_models_evaluation(tiny_weights: Path, tmp_path: Path) -> None:
    found = weights.directions(tiny_weights)
    assert app_module.scores_markdown(found) == ""  # not evaluated: no panel
    model = tmp_path / "piano_guitar"
    shutil.copytree(tiny_weights / "piano_guitar", model)
    scores = {"model": {"transfer_accuracy": 0.917, "chroma": 0.848, "paired_lsd_db": 10.92},
              "identity": {"paired_lsd_db": 12.09}, "eq": {"paired_lsd_db": 11.4}}
    (model / "evaluation.json").write_text(json.dumps({"directions": {"piano2guitar": scores}}))
    md = app_module.scores_markdown(weights.directions(tmp_path))
    assert "| Piano → Guitar | 92% | 0.85 | 10.9 dB (untouched input 12.1, fixed EQ 11.4) |" in md
    assert "Guitar → Piano" not in md  # that direction has no scores in the file
    unpaired = {k: {**v, "paired_lsd_db": None} for k, v in scores.items()}  # own folders, no paired set
    (model / "evaluation.json").write_text(json.dumps({"directions": {"piano2guitar": unpaired}}))
    assert "| Piano → Guitar | 92% | 0.85 | n/a (no paired clips) |" in app_module.scores_markdown(
        weights.directions(tmp_path))
    (model / "evaluation.json").write_text("{not json")
    assert app_module.scores_markdown(weights.directions(tmp_path)) == ""


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
def test_bad_input_is_a_plain_gradio_error(tiny_app: app_module.App, tmp_path: Path, name: str) -> None:
    make, words = BAD_INPUTS[name]
    path = make(tmp_path)
    with pytest.raises(gr.Error) as err:
        tiny_app.translate(str(path) if path else None, "piano2guitar")
    assert words in err.value.message
    assert "Traceback" not in err.value.message


def test_unknown_direction_is_a_gradio_error(tiny_app: app_module.App, example_clips: dict[str, Path]) -> None:
    with pytest.raises(gr.Error, match="Unknown direction"):
        tiny_app.translate(str(example_clips["piano_1"]), "banjo2kazoo")


@pytest.mark.parametrize("rate", [8_000, 192_000])
def test_any_sample_rate_is_resampled(tiny_app: app_module.App, tmp_path: Path, rate: int) -> None:
    path = _write(tmp_path / f"tone_{rate}.wav", tone(1.0, rate, channels=2), rate)
    result = tiny_app.translate(str(path), "guitar2piano")
    check_result(result, len(audio.load(path, SR, max_channels=2)))


def test_long_clip_is_trimmed_with_a_warning(tiny_app: app_module.App, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(app_module.gr, "Warning", lambda message, *a, **k: warnings.append(message))
    path = _write(tmp_path / "long.wav", tone(70.0, SR), SR)
    result = tiny_app.translate(str(path), "piano2guitar")
    check_result(result, int(app_module.MAX_SECONDS * SR))
    assert len(warnings) == 1 and "70.0 s" in warnings[0] and "60 s" in warnings[0]


# --- a real server ----------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def server(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app.py", "--weights", str(tiny_weights), "--port", str(port)],
                                cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180  # importing torch + gradio is slow on a loaded 2-core box
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not answer within 180 s:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("clip,direction", [("piano_2", "piano2guitar"), ("guitar_2", "guitar2piano")])
def test_api_translate(server: str, example_clips: dict[str, Path], clip: str, direction: str) -> None:
    client = Client(server, verbose=False)
    result = client.predict(handle_file(str(example_clips[clip])), direction, api_name="/translate")
    check_result(result, len(audio.load(example_clips[clip], SR, max_channels=2)))


def test_api_reports_bad_input(server: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "silence.wav", np.zeros(SR), SR)
    client = Client(server, verbose=False)
    with pytest.raises(Exception, match="silent"):
        client.predict(handle_file(str(path)), "piano2guitar", api_name="/translate")
    # ... and the server keeps serving
    assert httpx.get(server, timeout=10).status_code == 200


def test_twenty_clients_at_once(server: str, example_clips: dict[str, Path], tmp_path: Path) -> None:
    clip = _write(tmp_path / "one_second.wav", sf.read(str(example_clips["piano_3"]), dtype="float32")[0][:SR], SR)

    def call(i: int) -> tuple:
        return Client(server, verbose=False).predict(handle_file(str(clip)), ["piano2guitar", "guitar2piano"][i % 2],
                                                     api_name="/translate")

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(call, range(20)))
    for result in results:
        check_result(result, SR)


def test_no_weights_exits_with_the_training_command(tmp_path: Path) -> None:
    empty = tmp_path / "weights"
    empty.mkdir()
    run = subprocess.run([sys.executable, "app.py", "--weights", str(empty)], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=180)
    assert run.returncode != 0
    assert "python train.py --export piano_guitar" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout


# --- a real browser ---------------------------------------------------------

def test_browser_example_to_result(server: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (CI installs Debian's chromium)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(server, wait_until="networkidle", timeout=60_000)
            page.get_by_text("piano_1.ogg").click()
            page.locator("#translate").click()
            # the waveform player keeps its <audio> empty; the download link carries the file's URL
            link = page.locator('#translated-audio a[data-testid="download-link"]')
            link.wait_for(state="attached", timeout=90_000)
            assert link.get_attribute("href", timeout=10_000).endswith(".wav")
            for name in ("input", "translated", "reconstructed"):
                page.locator(f"#{name}-spectrogram img").wait_for(timeout=30_000)
            page.get_by_text("cycle error").wait_for(timeout=30_000)
            page.wait_for_timeout(1000)  # let the waveforms draw
            page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)
        finally:
            browser.close()
    check_png(ARTIFACTS / "app.png")
