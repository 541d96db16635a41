"""The Gradio app served for real: through gradio_client, and in a real browser (Chromium).

Everything runs on the tiny random-weight model from conftest, never the shipped weights.
"""
from __future__ import annotations

import os
import shutil
import re
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

from gradio_client import Client, handle_file  # noqa: E402
from test_handlers import SR, check_png, check_result, tone  # noqa: E402

from cyclegan import audio, weights  # noqa: E402

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _write(path: Path, wave: np.ndarray, sr: int) -> Path:
    sf.write(str(path), wave, sr)
    return path


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
    assert len(result) == 6  # existing callers unpack six values
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


def test_api_reports_progress_stages(server: str, tmp_path: Path) -> None:
    # a long stereo 44.1 kHz clip, so each stage outlasts the queue's 10 ms progress sampling
    clip = _write(tmp_path / "long.wav", tone(30.0, 44_100, channels=2), 44_100)
    job = Client(server, verbose=False).submit(handle_file(str(clip)), "piano2guitar", api_name="/translate")
    check_result(job.result(timeout=300), 30 * SR)
    stages = []
    while not job.communicator.updates.empty():  # every status message the client received, in order
        update = job.communicator.updates.get_nowait()
        for unit in getattr(update, "progress_data", None) or []:
            if not stages or stages[-1] != unit.desc:
                stages.append(unit.desc)
    assert stages[0] == "Reading audio" and stages[-1] == "Drawing"
    assert stages.index("Translating") < stages.index("Reconstructing") < stages.index("Drawing")


def test_api_tone_input_is_optional(server: str, example_clips: dict[str, Path]) -> None:
    client = Client(server, verbose=False)
    params = {p["parameter_name"]: p for p in client.view_api(print_info=False, return_format="dict")
              ["named_endpoints"]["/translate"]["parameters"]}
    assert params["tone"]["parameter_default"] == "clean" and params["tone"]["parameter_has_default"]
    assert params["strength"]["parameter_default"] == 1 and params["strength"]["parameter_has_default"]
    assert params["decay"]["parameter_default"] is False and params["decay"]["parameter_has_default"]
    clip = handle_file(str(example_clips["piano_3"]))
    clean = sf.read(client.predict(clip, "piano2guitar", api_name="/translate")[0])[0]
    driven = sf.read(client.predict(clip, "piano2guitar", tone="driven", api_name="/translate")[0])[0]
    assert clean.shape == driven.shape and np.abs(clean - driven).max() > 0.05


def test_no_weights_exits_with_the_training_command(tmp_path: Path) -> None:
    empty = tmp_path / "weights"
    empty.mkdir()
    run = subprocess.run([sys.executable, "app.py", "--weights", str(empty)], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=180)
    assert run.returncode != 0
    assert f"No trained model found under {empty}.\nTrain and export one first:\n    python train.py --export piano_guitar\n" == run.stderr
    assert "Traceback" not in run.stderr + run.stdout


# --- a real browser ---------------------------------------------------------

def _browser(p, *extra: str):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (CI installs Debian's chromium)")
    return p.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra])


def _open(page, url: str) -> None:
    # not "networkidle": the streaming microphone keeps a connection open; wait for the app itself
    page.goto(url, wait_until="load", timeout=60_000)
    page.locator("#translate").wait_for(timeout=60_000)


def test_browser_example_to_result(server: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            _open(page, server)
            page.get_by_text("piano_1.ogg").click()
            page.locator("#translate").click()
            # the waveform player keeps its <audio> empty; the download link carries the file's URL
            link = page.locator('#translated-audio a[data-testid="download-link"]')
            link.wait_for(state="attached", timeout=90_000)
            assert link.get_attribute("href", timeout=10_000).endswith("piano_1_piano2guitar.wav")
            for name in ("input", "translated", "reconstructed", "difference"):
                page.locator(f"#{name}-spectrogram img").wait_for(timeout=30_000)
            page.get_by_text("cycle error").wait_for(timeout=30_000)
            page.locator("#average-spectrum").get_by_text("frequency (Hz)").wait_for(timeout=30_000)
            # the player shows the clip's length once its waveform has been drawn
            page.locator("#translated-audio time", has_text="0:04").wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)
        finally:
            browser.close()
    check_png(ARTIFACTS / "app.png")


def test_browser_refuses_a_bad_upload_at_once(server: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"just some text, not audio\n" * 50)
    with sync_api.sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            _open(page, server)
            page.locator('#input-audio input[type="file"]').set_input_files(str(bad))
            # no Translate press: the upload event itself shows the message
            page.get_by_text("notes.wav: not a readable audio file").first.wait_for(timeout=60_000)
            assert page.locator("#translate").is_enabled()
        finally:
            browser.close()


def test_browser_live_tab_plays_the_translation(server: str, tmp_path: Path) -> None:
    """Chromium's fake microphone plays a file; the Live tab must stream translated audio back."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is missing (Gradio encodes a streamed output with it; CI installs Debian's)")
    mic = _write(tmp_path / "mic.wav", tone(8.0, 48_000), 48_000)
    fake = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required"]
    with sync_api.sync_playwright() as p:
        browser = _browser(p, *fake)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            _open(page, server)
            page.get_by_role("tab", name="Live").click()
            page.get_by_text("A near-live preview, not a guitar pedal.").wait_for(timeout=30_000)
            page.locator("#live-mic").get_by_role("button", name="Record").click()
            page.get_by_text(re.compile(r"\(([2-9]|\d\d)\.\d s heard\)")).wait_for(timeout=60_000)
            status = page.locator("#live-status").inner_text()
            assert re.search(r"Delay in the model 0\.\d\d s", status) and "% of the audio" in status
            # the page's live player is playing what each step sent
            page.locator("#live-player").get_by_text(re.compile(r"[1-9]\d*\.\d s played")).wait_for(timeout=30_000)
            # the page's player holds a second of translation (the download below is the stream so far)
            page.wait_for_function("() => { const el = document.querySelector('#live-output audio');"
                                   " return el && el.buffered.length && el.buffered.end(0) > 1; }",
                                   timeout=60_000, polling=100)
            link = page.locator('#live-output a[data-testid="download-link"]')
            link.wait_for(state="attached", timeout=30_000)
            got = httpx.get(link.get_attribute("href"), timeout=30)  # the stream so far, as AAC
            assert got.status_code == 200 and got.content, (got.status_code, len(got.content))
            played = got.content
            page.locator("#live-mic").get_by_role("button", name="Stop").click()
        finally:
            browser.close()
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", "pipe:0", "-f", "f32le", "-ac", "1", "-ar", str(SR),
                              "pipe:1"], input=played, capture_output=True, check=True).stdout
    wave = np.frombuffer(decoded, np.float32)
    assert len(wave) > 0.5 * SR and np.abs(wave).max() > 0.01  # translated audio arrived, and it is not silence
