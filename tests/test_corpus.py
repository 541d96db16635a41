"""Tests for cyclegan.corpus: a tiny corpus is rendered once per session (about a second)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cyclegan import corpus
from cyclegan.classifier import ClassifierConfig, train_classifier

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = dict(minutes=0.6, seed=1, sample_rate=16000, clip_seconds=2.0, paired=10)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return corpus.render_corpus(tmp_path_factory.mktemp("corpus") / "c", **SETTINGS)


def manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def clips(root: Path, domain: str, paired: bool) -> list[dict]:
    kind = "paired" if paired else "unpaired"
    return [c for c in manifest(root)["clips"] if c["domain"] == domain and c["set"] == kind]


def wavs(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.wav"))}


def test_layout_and_settings(tiny: Path) -> None:
    m = manifest(tiny)
    assert m["settings"] == corpus.CorpusSettings(
        soundfonts=corpus.resolve_soundfonts(), **SETTINGS).as_json()
    assert len(clips(tiny, "piano", False)) == len(clips(tiny, "guitar", False)) == 18
    assert len(clips(tiny, "piano", True)) == len(clips(tiny, "guitar", True)) == 10
    assert sorted(str(p.relative_to(tiny)) for p in tiny.rglob("*.wav")) == sorted(c["path"] for c in m["clips"])
    assert (tiny / "piano" / "0000.wav").exists() and (tiny / "paired" / "guitar" / "009.wav").exists()


def test_clips_are_mono_right_length_and_not_silent(tiny: Path) -> None:
    for c in manifest(tiny)["clips"]:
        info = sf.info(tiny / c["path"])
        assert (info.channels, info.samplerate, info.frames) == (1, 16000, 32000)
        x, _ = sf.read(tiny / c["path"])
        assert np.sqrt(np.mean(x**2)) > 1e-2, c["path"]
        assert np.abs(x).max() < 1.0
        assert c["program"] in corpus.PROGRAMS[c["domain"]] and c["notes"]


def test_notes_are_sane_and_in_range(tiny: Path) -> None:
    for c in manifest(tiny)["clips"]:
        lo, hi = corpus.RANGES["guitar"] if c["domain"] == "guitar" else corpus.PIANO_WIDE
        for pitch, start, end, vel in c["notes"]:
            assert lo <= pitch <= hi and 0 <= start < end <= 2.0 and 1 <= vel <= 127


def test_same_seed_identical_other_seed_different(tiny: Path, tmp_path: Path) -> None:
    again = corpus.render_corpus(tmp_path / "again", **SETTINGS)
    assert wavs(again) == wavs(tiny)
    other = corpus.render_corpus(tmp_path / "other", **{**SETTINGS, "seed": 2, "minutes": 0.1, "paired": 1})
    for name, data in wavs(other).items():
        assert data != wavs(tiny)[name]


def test_unpaired_material_is_disjoint(tiny: Path) -> None:
    piano = {json.dumps(c["notes"]) for c in clips(tiny, "piano", False)}
    guitar = {json.dumps(c["notes"]) for c in clips(tiny, "guitar", False)}
    assert len(piano) == 18 and len(guitar) == 18 and not piano & guitar
    paired = {json.dumps(c["notes"]) for c in clips(tiny, "piano", True)}
    assert not paired & (piano | guitar)  # the test material never appears in training


def test_a_shared_room_draw_does_not_share_the_noise() -> None:
    silence = np.zeros(4000)
    same = [corpus.augment(silence, np.random.default_rng(5), 16000, hiss=np.random.default_rng(h)) for h in (1, 1)]
    other = corpus.augment(silence, np.random.default_rng(5), 16000, hiss=np.random.default_rng(2))
    assert same[0][1] == other[1]  # the same room, EQ, level and noise level
    assert np.array_equal(same[0][0], same[1][0]) and np.abs(other[0]).max() > 0
    assert abs(np.corrcoef(same[0][0], other[0])[0, 1]) < 0.1  # but independent noise


def test_paired_set_has_same_notes(tiny: Path) -> None:
    for p, g in zip(clips(tiny, "piano", True), clips(tiny, "guitar", True), strict=True):
        assert Path(p["path"]).name == Path(g["path"]).name
        assert p["notes"] == g["notes"]
        assert p["augment"] == g["augment"] and p["augment"]["noise_db"] < -50  # same room, mic and level
        assert not np.array_equal(sf.read(tiny / p["path"])[0], sf.read(tiny / g["path"])[0])


def test_timbre_separable_by_a_small_classifier(tmp_path: Path) -> None:
    # A linear probe on clip-mean log-mel mostly sees which pitches are played (0.7-0.85 held out:
    # piano vs the clean/jazz guitars and the Electric Grand stay hard for it). The instrument
    # classifier's small CNN over ~1 s log-mel windows sees the timbre itself; here it is trained
    # for ~30 s on two thirds of a TimGM6mb-only corpus (the hardest SoundFont) and must label the
    # rest, plus the paired set, with >= 95 % accuracy (0.97-0.98 over classifier seeds).
    root = corpus.render_corpus(tmp_path / "probe", minutes=9, seed=0, sample_rate=16000,
                                clip_seconds=2.0, paired=20)
    everything = manifest(root)["clips"]
    unpaired = [c for c in everything if c["set"] == "unpaired"]
    train = [c for i, c in enumerate(unpaired) if i % 3]
    held = [c for i, c in enumerate(unpaired) if i % 3 == 0] + [c for c in everything if c["set"] == "paired"]
    cfg = ClassifierConfig(sample_rate=16000, fmax=7600, n_mels=128, window_frames=64, width=8, steps=400,
                           batch_size=16)
    clf = train_classifier({d: [root / c["path"] for c in train if c["domain"] == d] for d in corpus.PROGRAMS},
                           cfg, progress=False)
    accuracy = np.mean([clf.predict(sf.read(root / c["path"])[0], 16000) == c["domain"] for c in held])
    print(f"held-out piano/guitar accuracy: {accuracy:.3f} on {len(held)} clips")
    assert accuracy >= 0.95, accuracy  # 0.982 with these settings


def test_missing_and_broken_soundfonts(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sf2"
    with pytest.raises(corpus.CorpusError, match="nope.sf2"):
        corpus.render_corpus(tmp_path / "a", 0.05, soundfonts=[missing])
    garbage = tmp_path / "garbage.sf2"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(corpus.CorpusError, match="garbage.sf2"):
        corpus.render_corpus(tmp_path / "b", 0.05, soundfonts=[garbage])
    fake = tmp_path / "fake.sf2"  # right header, broken body: caught by the loader itself
    fake.write_bytes(b"RIFF\x00\x10\x00\x00sfbk" + bytes(4096))
    with pytest.raises(corpus.CorpusError, match="fake.sf2"):
        corpus.render_corpus(tmp_path / "c", 0.05, soundfonts=[fake])
    assert not list(tmp_path.glob("[abc]*")) and not list(tmp_path.glob(".*tmp*"))


def test_cli_reports_bad_soundfont_without_traceback(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "cyclegan.corpus", "--out", str(tmp_path / "o"), "--minutes", "0.05",
           "--soundfont", str(tmp_path / "missing.sf2")]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "missing.sf2" in r.stderr and "Traceback" not in r.stderr


def test_cli_renders(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "cyclegan.corpus", "--out", str(tmp_path / "o"), "--minutes", "0.05",
           "--clip-seconds", "1", "--paired", "1", "--no-system-soundfonts"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "x real time" in r.stdout
    assert len(manifest(tmp_path / "o")["clips"]) == 8


def test_cli_uses_the_installed_system_soundfonts_as_train_py_does(tmp_path: Path, monkeypatch) -> None:
    system = tmp_path / "system.sf2"  # a stand-in for FluidR3_GM.sf2, which CI does not install
    shutil.copy(corpus.default_soundfont(), system)
    monkeypatch.setattr(corpus, "SYSTEM_SOUNDFONTS", (system, tmp_path / "not_installed.sf2"))
    small = ["--minutes", "0.05", "--clip-seconds", "1", "--paired", "1"]
    assert corpus.main(["--out", str(tmp_path / "with"), *small]) == 0
    assert manifest(tmp_path / "with")["settings"]["soundfonts"] == [str(corpus.default_soundfont().resolve()),
                                                                     str(system.resolve())]
    assert corpus.main(["--out", str(tmp_path / "without"), *small, "--no-system-soundfonts"]) == 0
    assert manifest(tmp_path / "without")["settings"]["soundfonts"] == [str(corpus.default_soundfont().resolve())]


def test_ensure_corpus_reuses_and_rerenders(tmp_path: Path) -> None:
    small = dict(minutes=0.05, clip_seconds=1.0, paired=1, sample_rate=16000)
    out = corpus.ensure_corpus(tmp_path / "c", **small)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert corpus.ensure_corpus(tmp_path / "c", **small) == out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps
    corpus.ensure_corpus(tmp_path / "c", **{**small, "seed": 5})
    assert manifest(out)["settings"]["seed"] == 5
    assert (out / "manifest.json").stat().st_mtime_ns != stamps[out / "manifest.json"]


def test_interrupted_render_leaves_no_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> dict:
        raise KeyboardInterrupt

    monkeypatch.setattr(corpus, "_render_job", boom)
    with pytest.raises(KeyboardInterrupt):
        corpus.render_corpus(tmp_path / "c", 0.05)
    assert list(tmp_path.iterdir()) == []


def test_missing_preset_falls_back_within_family(monkeypatch: pytest.MonkeyPatch) -> None:
    r = corpus.Renderer(corpus.resolve_soundfonts(), 16000)
    synth, _ = next(iter(r.synths.values()))
    path = next(iter(r.synths))
    monkeypatch.setattr(corpus, "SKIP", {})
    monkeypatch.setattr(synth, "sfpreset_name", lambda sfid, bank, p: None if p == 26 else "x")
    assert r.program(path, "guitar", 27) == 27
    assert r.program(path, "guitar", 26) == 27  # another electric guitar first
    monkeypatch.setattr(synth, "sfpreset_name", lambda sfid, bank, p: "x" if p == 24 else None)
    assert r.program(path, "guitar", 26) == 24  # then the GM guitar family base
    monkeypatch.setattr(synth, "sfpreset_name", lambda sfid, bank, p: None)
    with pytest.raises(corpus.CorpusError, match="no guitar preset"):
        r.program(path, "guitar", 26)


def test_skipped_presets_are_never_rendered(tiny: Path) -> None:
    r = corpus.Renderer(corpus.resolve_soundfonts(), 16000)
    path = next(iter(r.synths))
    assert Path(path).name == "TimGM6mb.sf2" and corpus.SKIP[("TimGM6mb.sf2", "guitar")] == (27,)
    assert r.program(path, "guitar", 27) == 26  # its bright clean guitar: the other electric guitar instead
    assert r.program(path, "piano", 1) == 1
    played = {c["program"] for c in clips(tiny, "guitar", False) + clips(tiny, "guitar", True)}
    assert played == {26}
