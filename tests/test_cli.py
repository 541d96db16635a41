"""train.py and the translate CLI as a user runs them, in subprocesses."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import soundfile as sf
import torch
from safetensors.torch import load_file

from cyclegan.store import load_tree
from conftest import ROOT

TINY = ["--ngf", "4", "--n-blocks", "1", "--bottleneck", "16", "--ndf", "4", "--crop-frames", "32"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(*args, timeout=300):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def test_train_help_documents_every_flag():
    r = run("train.py", "--help")
    assert r.returncode == 0
    for flag in ["--domain-a", "--domain-b", "--name-a", "--name-b", "--steps", "--batch-size", "--lr", "--crop-frames",
                 "--ngf", "--n-blocks", "--lambda-cycle", "--lambda-identity", "--out", "--resume", "--device",
                 "--seed", "--val-every", "--save-every", "--export", "--d-layers",
                 "--time-limit", "--snapshot-every", "--cycle-loss", "--init-from", "--keep", "--allow-data-change",
                 "--b-twins", "--other-guitars"]:
        assert flag in r.stdout, flag


def test_train_explains_bad_folders(tmp_path):
    r = run("train.py", "--domain-a", tmp_path / "missing", "--domain-b", tmp_path, "--out", tmp_path / "o")
    assert r.returncode != 0 and "missing: no such folder" in r.stderr and "Traceback" not in r.stderr
    r = run("train.py", "--domain-a", tmp_path)
    assert r.returncode != 0 and "pass both --domain-a and --domain-b" in r.stderr
    r = run("train.py", "--domain-a", tmp_path, "--domain-b", tmp_path, "--other-guitars", "--out", tmp_path / "o2")
    assert r.returncode != 0 and "--other-guitars adds the built-in corpus's guitar-other/" in r.stderr
    assert not (tmp_path / "o2").exists()


def test_train_export_then_translate_cli(toy_domains, tmp_path):
    a, b = toy_domains
    r = run("train.py", "--domain-a", a, "--domain-b", b, "--steps", "2", "--val-every", "2", "--out", tmp_path / "run",
            "--cache-dir", tmp_path / "cache", "--export", "toy", "--weights-root", tmp_path / "w", *TINY,
            "--snapshot-every", "1")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "w" / "toy" / "generators.safetensors").exists()
    assert json.loads((tmp_path / "w" / "toy" / "config.json").read_text())["model"]["ngf"] == 4
    assert sorted(p.name for p in (tmp_path / "run" / "snapshots").iterdir()) == ["step_0000001", "step_0000002"]
    r = run("-m", "cyclegan.translate", a, "--direction", "piano2guitar", "--weights", tmp_path / "w",
            "--out", tmp_path / "out", "--reconstruct")
    assert r.returncode == 0, r.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(f"a{i}_piano2guitar{s}.wav" for i in range(4) for s in ("", "2piano"))
    assert all(f"wrote {tmp_path / 'out' / n}" in r.stdout + r.stderr for n in written)
    assert sf.info(tmp_path / "out" / "a0_piano2guitar.wav").frames == sf.info(a / "a0.wav").frames
    r = run("-m", "cyclegan.translate", a, "--direction", "violin2flute", "--weights", tmp_path / "w")
    assert r.returncode != 0 and "available: piano2guitar, guitar2piano" in r.stderr


def test_init_from_starts_a_new_run_from_exported_generators(toy_domains, tmp_path):
    a, b = toy_domains
    common = ["train.py", "--domain-a", a, "--domain-b", b, "--cache-dir", tmp_path / "cache",
              "--weights-root", tmp_path / "w"]
    assert run(*common, "--steps", "1", "--out", tmp_path / "base", "--export", "base", *TINY).returncode == 0
    # 0 steps: the exported generators must be exactly the ones started from
    r = run(*common, "--steps", "0", "--out", tmp_path / "ft", "--export", "ft", "--init-from", tmp_path / "w" / "base",
            "--cycle-loss", "linear", "--ndf", "8")
    assert r.returncode == 0, r.stderr
    assert "generators from" in r.stdout
    base, ft = (load_file(tmp_path / "w" / n / "generators.safetensors") for n in ("base", "ft"))
    assert base.keys() == ft.keys() and all(torch.equal(base[k], ft[k]) for k in base)
    saved = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert saved["model"]["ngf"] == 4 and saved["train"]["cycle_loss"] == "linear"  # the generators' own settings
    assert saved["model"]["ndf"] == 8  # new discriminators may differ
    r = run(*common, "--steps", "0", "--out", tmp_path / "long", "--export", "long", "--init-from",
            tmp_path / "w" / "base", "--long-blocks", "2")
    assert r.returncode == 0 and "2 long block(s) added as the identity" in r.stdout, r.stderr
    long = load_file(tmp_path / "w" / "long" / "generators.safetensors")
    assert all(torch.equal(base[k], long[k]) for k in base)
    added = sorted(k for k in long if k not in base)
    assert len(added) == 2 * 2 * 8 and all(not long[k].any() for k in added if k.endswith("body.4.weight"))
    r = run(*common, "--out", tmp_path / "short", "--init-from", tmp_path / "w" / "long", "--long-blocks", "0")
    assert r.returncode != 0 and "do not fit this model" in r.stderr and "Traceback" not in r.stderr
    r = run(*common, "--out", tmp_path / "ft2", "--init-from", tmp_path / "w" / "base", "--ngf", "8")
    assert r.returncode != 0 and "--ngf cannot change with --init-from" in r.stderr
    r = run(*common, "--out", tmp_path / "ft3", "--init-from", tmp_path / "nothing")
    assert r.returncode != 0 and "no exported model there" in r.stderr and "Traceback" not in r.stderr
    half = tmp_path / "half"  # a config without its weights: refused before any training starts
    half.mkdir()
    (half / "config.json").write_bytes((tmp_path / "w" / "base" / "config.json").read_bytes())
    r = run(*common, "--out", tmp_path / "ft4", "--init-from", half)
    assert r.returncode != 0 and "generators.safetensors is missing" in r.stderr and "Traceback" not in r.stderr


def test_init_from_keeps_the_exported_discriminators_where_they_fit(toy_domains, tmp_path):
    a, b = toy_domains
    common = ["train.py", "--domain-a", a, "--domain-b", b, "--cache-dir", tmp_path / "cache",
              "--weights-root", tmp_path / "w", *TINY]
    assert run(*common, "--steps", "1", "--out", tmp_path / "base", "--export", "base").returncode == 0
    base = tmp_path / "w" / "base"
    r = run(*common, "--steps", "0", "--out", tmp_path / "ft", "--export", "ft", "--init-from", base)
    assert r.returncode == 0 and "discriminators from it too; optimisers start fresh" in r.stdout, r.stderr
    d0, d1 = (load_file(tmp_path / "w" / n / "discriminators.safetensors") for n in ("base", "ft"))
    assert d0.keys() == d1.keys() and len(d0) > 0 and all(torch.equal(d0[k], d1[k]) for k in d0)
    r = run(*common[:-2], "--crop-frames", "32", "--steps", "0", "--out", tmp_path / "deep", "--init-from", base,
            "--d-layers", "2")
    assert r.returncode == 0 and "its discriminators do not fit --ndf/--d-layers" in r.stdout, r.stderr
    (base / "discriminators.safetensors").write_bytes(b"\0" * 64)
    r = run(*common, "--steps", "0", "--out", tmp_path / "bad", "--init-from", base)
    assert r.returncode != 0 and "discriminators.safetensors is unreadable" in r.stderr, r.stderr
    assert "delete it to start the discriminators fresh" in r.stderr and "Traceback" not in r.stderr
    (base / "discriminators.safetensors").unlink()
    r = run(*common, "--steps", "0", "--out", tmp_path / "none", "--init-from", base)
    assert r.returncode == 0 and "start fresh (it has no discriminators)" in r.stdout, r.stderr


def torchrun(*args):
    return run("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py", *args, timeout=600)


def test_torchrun_resume_equals_the_uninterrupted_two_process_run(toy_domains, tmp_path):
    """Each rank draws its own crops and keeps its own history pool; a resumed run must give
    every rank its own back (pool size 2, so old fakes return within these few steps)."""
    a, b = toy_domains
    common = ["--domain-a", a, "--domain-b", b, "--steps", "4", "--val-every", "100", "--pool-size", "2",
              "--cache-dir", tmp_path / "cache", "--device", "cpu", *TINY]
    r = torchrun(*common, "--out", tmp_path / "straight")
    assert r.returncode == 0, r.stderr[-3000:]
    # a time limit must stop both ranks at the same step, or the one left running hangs
    r = torchrun(*common, "--out", tmp_path / "split", "--time-limit", "0")
    assert r.returncode == 0, r.stderr[-3000:]
    first = tmp_path / "split" / "checkpoint_0000001.safetensors"
    assert f"time limit reached at step 1; the checkpoint of step 1 ({first}) stands" in r.stdout
    r = torchrun(*common, "--out", tmp_path / "split", "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("resuming from step 1") == 1  # rank 0 speaks for the run
    saved = [load_tree(tmp_path / d / "checkpoint_0000004.safetensors") for d in ("straight", "split")]
    for part in ("gens", "discs"):
        assert all(torch.equal(saved[0][part][k], v) for k, v in saved[1][part].items())
    ranks = saved[1]["ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["rng"]["sampler_a"], ranks[1]["rng"]["sampler_a"])
    for d in ("straight", "split"):
        prints = json.loads((tmp_path / d / "ranks.json").read_text())
        assert prints["world"] == 2 and len(set(prints["fingerprints"])) == 1


def test_train_explains_an_unwritable_out_before_training(toy_domains, tmp_path):
    a, b = toy_domains
    (tmp_path / "file").write_text("")
    r = run("train.py", "--domain-a", a, "--domain-b", b, "--out", tmp_path / "file" / "run", *TINY)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (f"error: cannot write the checkpoints to {tmp_path / 'file' / 'run'} "
                                                 "(Not a directory): choose another folder or fix its permissions")


def test_defaults_live_in_the_repository_and_given_paths_in_the_working_directory(monkeypatch, tmp_path):
    import train

    args = train.parse_args([])
    assert (args.out, args.cache_dir, args.weights_root) == (
        ROOT / "runs" / "piano_guitar", ROOT / "data" / "spec-cache", ROOT / "weights")
    assert train.DEFAULT_CORPUS == ROOT / "data" / "corpus" and args.keep == 3
    monkeypatch.chdir(tmp_path)
    args = train.parse_args(["--out", "mine", "--weights-root", "w", "--cache-dir", "c"])
    assert [p.resolve() for p in (args.out, args.weights_root, args.cache_dir)] == [
        tmp_path / "mine", tmp_path / "w", tmp_path / "c"]


def test_the_built_in_corpus_twins_driven_guitars_and_with_other_guitars_adds_them(monkeypatch, tmp_path):
    import train
    from cyclegan import corpus

    monkeypatch.setattr(corpus, "ensure_corpus", lambda *a, **k: tmp_path)
    other = (tmp_path / "guitar-other", tmp_path / "guitar-other-clean")
    for argv, twins in (([], [(tmp_path / "guitar-driven", tmp_path / "guitar-driven-clean")]),
                        (["--other-guitars"], [(tmp_path / "guitar-driven", tmp_path / "guitar-driven-clean"), other]),
                        (["--b-twins", "x", "y", "--other-guitars"], [(Path("x").resolve(), Path("y").resolve()), other])):
        args = train.parse_args(argv)
        train.default_corpus(args)
        assert (args.domain_a, args.domain_b) == (tmp_path / "piano", tmp_path / "guitar")
        assert [tuple(Path(p).resolve() for p in pair) for pair in args.b_twins] == twins, argv


def test_resume_may_change_the_schedule_but_not_the_model(toy_domains, tmp_path):
    a, b = toy_domains
    common = ["train.py", "--domain-a", a, "--domain-b", b, "--val-every", "2", "--out", tmp_path / "run",
              "--cache-dir", tmp_path / "cache"]
    assert run(*common, "--steps", "2", "--no-lr-decay", *TINY).returncode == 0
    r = run(*common, "--steps", "3", "--resume", "--lambda-identity", "0.5")
    assert r.returncode == 0, r.stderr
    assert "resuming from step 2" in r.stdout
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["lambda_identity"] == 0.5 and saved["train"]["steps"] == 3 and saved["model"]["ngf"] == 4
    assert saved["train"]["lr_decay"] is False  # kept from the checkpoint unless given
    assert run(*common, "--steps", "4", "--resume", "--lr-decay").returncode == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["lr_decay"] is True
    r = run(*common, "--steps", "4", "--resume", "--ngf", "8")
    assert r.returncode != 0 and "--ngf cannot change when resuming" in r.stderr
    r = run(*common, "--steps", "5", "--resume", "--seed", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: --resume would change --seed 1 (was 0), so the "
                                                        "validation split")


def test_sigterm_stops_train_py_with_a_checkpoint_of_the_step_it_finished(toy_domains, tmp_path):
    a, b = toy_domains
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "train.py", "--domain-a", a, "--domain-b", b, "--steps", "100000",
                             "--save-every", "1", "--val-every", "100000", "--out", out,
                             "--cache-dir", tmp_path / "cache", *TINY], cwd=ROOT, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint_0000002.safetensors").exists():  # training is under way
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    last = err.strip().splitlines()[-1]
    step = int(last.split("stopped at step ")[1].split(";")[0])
    assert proc.returncode == 1 and "Traceback" not in err and "SIGTERM: stopping after this step" in err
    ckpt = out / f"checkpoint_{step:07d}.safetensors"
    assert last == (f"stopped at step {step}; the checkpoint of step {step} ({ckpt}) stands: "
                    "continue with the same command and --resume")
    assert load_tree(ckpt)["step"] == step
