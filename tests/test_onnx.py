"""ONNX export, the onnx backend (onnxruntime + numpy spectrogram) and the torch-free docs example."""
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from cyclegan import audio, export_onnx, onnx_backend as ob
from cyclegan.config import SpecConfig
from cyclegan.translate import Translator, main
from conftest import EXAMPLES, ROOT

SPEC = SpecConfig()


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference ** 2) / max(np.sum((reference - other) ** 2), 1e-30)))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The shipped pair, exported by the command into a copy (the graphs are not committed)."""
    folder = tmp_path_factory.mktemp("shipped") / "piano_guitar"
    shutil.copytree(ROOT / "weights" / "piano_guitar", folder, ignore=shutil.ignore_patterns("onnx"))
    assert export_onnx.main(["--weights", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def piano() -> np.ndarray:
    return audio.load(EXAMPLES / "piano_1.ogg", SPEC.sample_rate)


def test_export_writes_both_graphs_a_manifest_and_a_readme(pair):
    folder = pair / "onnx"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "a2b.onnx", "b2a.onnx", "manifest.json"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["opset"] == export_onnx.OPSET and manifest["input"] == "log_magnitude"
    assert manifest["weights_sha256"] == ob.file_digest(pair / "generators.safetensors")
    assert max(manifest["max_abs_diff_vs_torch"].values()) < 1e-4
    card = (folder / "README.md").read_text()
    assert f"opset {export_onnx.OPSET}" in card and "(batch, 1, 256, frames)" in card and "hop 128" in card


@pytest.mark.parametrize("shape", [(256, 1), (256, 7), (256, 333), (3, 1, 256, 50)])
def test_a_graph_takes_any_length_and_batch_and_matches_torch(pair, shape):
    tr = Translator(pair, "cpu")
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    got = ob.OnnxGenerators(pair).b2a(x.numpy())
    with torch.inference_mode():
        want = tr.gens.b2a(x if x.dim() == 4 else x[None, None])
    assert got.shape == shape and np.abs(got - want.reshape(shape).numpy()).max() < 1e-5


def test_numpy_front_end_matches_audio_py(piano):
    x, angle = audio.analyse(piano, SPEC)
    xn, phasor = ob.analyse(audio.normalise(piano)[0], SPEC)
    assert xn.shape == tuple(x.shape) and np.abs(xn - x.numpy()).max() < 1e-3  # 0.05 dB: float32 near the floor
    assert np.abs(ob.from_model(xn, SPEC) - audio.from_model(x, SPEC).numpy()).max() < 1e-3
    want = audio.synthesise(x, angle, SPEC, len(piano))
    assert snr_db(want, ob.synthesise(xn, phasor, SPEC, len(piano))) > 80
    piece = piano[:5000]
    for length in (3000, 5000, 5077):  # shorter, exact, longer (torch keeps the padded tail)
        want = audio.istft(audio.stft(torch.from_numpy(piece), SPEC), SPEC, length).numpy()
        assert np.abs(ob.istft(ob.stft(piece, SPEC), SPEC, length) - want).max() < 1e-5


@pytest.mark.parametrize("reverse", [False, True])
def test_onnx_backend_gives_the_torch_translation(pair, piano, reverse):
    t, o = Translator(pair, "cpu"), Translator(pair, backend="onnx")
    a, b = t.translate(piano, reverse), o.translate(piano, reverse)
    assert snr_db(a.translated, b.translated) > 40 and snr_db(a.reconstructed, b.reconstructed) > 40
    assert a.magnitudes.keys() == b.magnitudes.keys()
    for k, v in a.magnitudes.items():
        assert b.magnitudes[k].dtype == np.float32 and np.allclose(b.magnitudes[k], v, rtol=1e-3, atol=1e-3 * v.max())
    assert b.cycle_error == pytest.approx(a.cycle_error, rel=1e-3)
    lean = o.translate(piano, reverse, spectrograms=False, reconstruct=False)
    assert lean.reconstructed.size == 0 and np.isnan(lean.cycle_error) and snr_db(a.translated, lean.translated) > 40


def test_onnx_run_takes_and_gives_torch_tensors_like_the_torch_backend(pair):
    t, o = Translator(pair, "cpu"), Translator(pair, backend="onnx")
    x = torch.rand(256, 40) * 2 - 1
    y = o.run(o.generator(True)[0], x)
    assert isinstance(y, torch.Tensor) and y.shape == (256, 40)
    assert torch.allclose(y, t.run(t.generator(True)[0], x), atol=1e-5)
    assert isinstance(o.run(o.generator(False)[1], x.numpy()), np.ndarray)


def test_missing_graphs_onnxruntime_or_stale_weights_are_explained(tiny_weights, pair, tmp_path, monkeypatch):
    with pytest.raises(ob.BackendUnavailable, match=r"onnx/manifest.json is missing; export them with "
                                                    r"`python -m cyclegan.export_onnx --weights "):
        Translator(tiny_weights / "piano_guitar", backend="onnx")
    stale = tmp_path / "stale"
    shutil.copytree(pair, stale)
    (stale / "generators.safetensors").write_bytes((tiny_weights / "piano_guitar" / "generators.safetensors").read_bytes()
                                                   + b" ")
    with pytest.raises(ob.BackendUnavailable, match="exported from other weights"):
        Translator(stale, backend="onnx")
    with pytest.raises(ValueError, match="unknown backend 'tflite'"):
        Translator(pair, backend="tflite")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(ob.BackendUnavailable, match="needs onnxruntime: `pip install onnxruntime`"):
        Translator(pair, backend="onnx")


def test_cli_backend_onnx_writes_the_translation_or_says_what_is_missing(tiny_weights, pair, tmp_path, capsys):
    clip = EXAMPLES / "piano_1.ogg"
    try:
        assert main([str(clip), "--direction", "piano2guitar", "--weights", str(pair), "--backend", "onnx",
                     "--out", str(tmp_path)]) == 0
        with pytest.raises(SystemExit, match=r"^error: .*a2b.onnx is missing|^error: .*manifest.json is missing"):
            main([str(clip), "--direction", "piano2guitar", "--weights", str(tiny_weights), "--backend", "onnx"])
    finally:
        torch.set_num_threads(1)  # the CLI takes every core
    wave = audio.load(tmp_path / "piano_1_piano2guitar.wav", SPEC.sample_rate)
    want = Translator(pair, "cpu").translate(audio.load(clip, SPEC.sample_rate)).translated
    assert wave.shape == want.shape and snr_db(want, wave) > 40  # 16-bit file: ~90 dB of rounding


def test_shipped_model_on_onnx_gives_the_torch_audio_on_every_example(pair, example_clips):
    t, o = Translator(pair, "cpu"), Translator(pair, backend="onnx")
    for stem, clip in example_clips.items():
        wave = audio.load(clip, t.spec.sample_rate)
        a, b = (tr.translate(wave, stem.startswith("guitar"), spectrograms=False) for tr in (t, o))
        assert snr_db(a.translated, b.translated) > 40, stem
        assert snr_db(a.reconstructed, b.reconstructed) > 40, stem
        if stem.startswith("guitar"):  # the shipped config's decay, into piano, on either backend's spectrogram
            a, b = (tr.translate(wave, True, spectrograms=False, decay=True) for tr in (t, o))
            assert snr_db(a.translated, b.translated) > 40, stem


def test_the_docs_example_runs_without_torch_and_matches_the_translator(pair, tmp_path):
    code = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "onnx.md").read_text(), re.S).group(1)
    (tmp_path / "example.py").write_text(code)
    clip = tmp_path / "piano.wav"
    audio.save(clip, audio.load(EXAMPLES / "piano_2.ogg", SPEC.sample_rate), SPEC.sample_rate)
    out = tmp_path / "out.wav"
    no_torch = ("import sys, runpy; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
                "runpy.run_path(sys.argv[0], run_name='__main__'); assert 'cyclegan' not in sys.modules")
    for direction, reverse in (("piano2guitar", False), ("guitar2piano", True)):  # the second caps its bass
        r = subprocess.run([sys.executable, "-c", no_torch, tmp_path / "example.py", clip, out, pair, direction],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        want = Translator(pair, "cpu").translate(audio.load(clip, SPEC.sample_rate), reverse).translated
        got = audio.load(out, SPEC.sample_rate)
        assert got.shape == want.shape and snr_db(want, got) > 40
