import os
from pathlib import Path

import pytest
import torch

from cyclegan import audio, store, weights
from cyclegan.config import SpecConfig
from cyclegan.metrics import relative_cycle_error
from cyclegan.fit import RunLog, RunOptions, find_checkpoint, fit
from cyclegan.models import Generators
from cyclegan.training import CycleGAN, HistoryPool, cycle_distance
from conftest import tiny_config

CPU = torch.device("cpu")


def batch(seed: int) -> torch.Tensor:
    """Spectrogram-like: harmonic stripes over frequency, a decay over time, a little noise."""
    g = torch.Generator().manual_seed(seed)
    f0 = 4 + 6 * torch.rand(2, 1, 1, 1, generator=g)
    freq, time = torch.arange(256.0)[:, None], torch.arange(32.0)[None, :]
    x = torch.cos(2 * torch.pi * freq / f0) * torch.exp(-time / 20) - 0.2 + 0.05 * torch.randn(2, 1, 256, 32, generator=g)
    return x.clamp(-1, 1)


def test_a_few_steps_lower_the_cycle_loss():
    cfg = tiny_config(lr=2e-3)
    cfg.model.skip = False  # start far from the identity, so there is a cycle loss to lower
    model = CycleGAN(cfg, CPU)
    a, b = batch(1), batch(2)
    losses = [model.step(a, b).losses["cycle"] for _ in range(20)]
    assert sum(losses[-3:]) < 0.85 * sum(losses[:3])  # measured: about 0.75
    assert model.step_count == 20


def test_warmup_trains_only_the_discriminators_then_both():
    model = CycleGAN(tiny_config(lr=2e-3, d_warmup=3), CPU)
    snapshot = lambda m: [p.detach().clone() for p in m.parameters()]
    changed = lambda before, m: any(not torch.equal(x, y) for x, y in zip(before, m.parameters()))
    g0, d0 = snapshot(model.gens), snapshot(model.discs)
    warm = [model.step(batch(1), batch(2)).losses for _ in range(3)]
    assert not changed(g0, model.gens) and changed(d0, model.discs)
    assert all(l["g_adv"] == 0.0 and l["d"] > 0 for l in warm)
    model.step(batch(1), batch(2))
    assert changed(g0, model.gens)


def test_cycle_distances_weigh_quiet_bins_differently():
    spec, x = SpecConfig(), batch(1)
    assert all(cycle_distance(x, x, k, spec).item() == 0 for k in ("log", "linear", "cbrt"))
    rec = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    report = relative_cycle_error(audio.from_model(x, spec).numpy(), audio.from_model(rec, spec).numpy())
    assert cycle_distance(rec, x, "linear", spec).item() == pytest.approx(report, rel=1e-4)  # the report's metric
    # half the bins at -20 dB, half at -80 dB; the same +5 dB error in either half
    x = torch.full((1, 1, 2, 8), 0.6)
    x[:, :, 1] = -0.6
    loud, quiet = x.clone(), x.clone()
    loud[:, :, 0] += 0.1
    quiet[:, :, 1] += 0.1
    ratios = {k: (cycle_distance(quiet, x, k, spec) / cycle_distance(loud, x, k, spec)).item()
              for k in ("log", "linear", "cbrt")}
    assert ratios["log"] == pytest.approx(1.0)  # every bin alike
    assert ratios["linear"] == pytest.approx(1e-3, rel=1e-3)  # 60 dB down: a thousandth
    assert ratios["cbrt"] == pytest.approx(0.1, rel=1e-3)
    with pytest.raises(ValueError, match="unknown cycle loss 'l2'"):
        CycleGAN(tiny_config(cycle_loss="l2"), CPU)


def test_history_pool_mixes_old_and_new_fakes():
    pool = HistoryPool(4, seed=0)
    first = [pool.query(torch.full((2, 1, 2, 2), float(i))) for i in range(2)]
    assert [t[0, 0, 0, 0].item() for t in first] == [0.0, 1.0]  # filling up: fakes pass through
    seen = torch.cat([pool.query(torch.full((2, 1, 2, 2), 9.0)) for _ in range(20)]).flatten().unique()
    assert seen.tolist() == [0.0, 1.0, 9.0]  # the older fakes came back, each replaced by a new one
    assert [t[0, 0, 0].item() for t in pool.items] == [9.0] * 4
    longer = pool.query(torch.zeros(2, 1, 2, 3))  # a resumed run with longer crops
    assert longer.shape == (2, 1, 2, 3) and all(t.shape == (1, 2, 3) for t in pool.items)


def test_compiled_step_trains_the_same_model_as_eager():
    """train.py --compile (inductor once failed on the replicate padding's backward)."""
    cfg = tiny_config()
    eager, compiled = CycleGAN(cfg, CPU), CycleGAN(cfg, CPU)
    start = torch.nn.utils.parameters_to_vector(eager.gens.parameters()).detach().clone()
    compiled.compile()
    a, b = batch(1), batch(2)
    for _ in range(3):  # later steps' losses depend on the earlier updates
        want, got = eager.step(a, b).losses, compiled.step(a, b).losses
        assert got == pytest.approx(want, rel=1e-3, abs=1e-5)
    # Adam turns rounding-level gradient differences into whole lr-sized steps for a few
    # weights, so compare the updates as a whole
    moved = [torch.nn.utils.parameters_to_vector(m.gens.parameters()).detach() - start for m in (eager, compiled)]
    assert (moved[1] - moved[0]).norm() < 0.05 * moved[0].norm()


def save(model: CycleGAN, path: Path, extra_rng: dict | None = None) -> None:
    store.save_tree(path, {**model.state_dict(), "ranks": [model.rank_state(extra_rng or {})]})


def load(model: CycleGAN, path: Path) -> dict:
    tree = store.load_tree(path)
    model.load_state_dict(tree)
    return model.load_rank_state(tree["ranks"][0])


def test_checkpoint_round_trip_keeps_everything(tmp_path):
    model = CycleGAN(tiny_config(), CPU)
    model.step(batch(1), batch(2))
    save(model, tmp_path / "c.safetensors", {"sampler_a": torch.Generator().get_state()})
    other = CycleGAN(tiny_config(seed=5), CPU)
    rng = other.load_rank_state(store.load_tree(tmp_path / "c.safetensors")["ranks"][0])
    other.load_state_dict(store.load_tree(tmp_path / "c.safetensors"))
    assert other.step_count == 1 and set(rng) == {"torch", "sampler_a"}
    for x, y in zip(model.gens.state_dict().values(), other.gens.state_dict().values()):
        assert torch.equal(x, y)
    assert other.opt_g.state_dict()["state"][0]["exp_avg"].equal(model.opt_g.state_dict()["state"][0]["exp_avg"])
    assert other.pools["a"].items[0].equal(model.pools["a"].items[0])


def test_checkpoints_are_not_pickles(tmp_path):
    model = CycleGAN(tiny_config(), CPU)
    save(model, tmp_path / "c.safetensors")
    assert (tmp_path / "c.safetensors").read_bytes()[8:9] == b"{"  # safetensors: length + JSON header


def test_atomic_save_survives_a_crash_before_the_rename(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    model = CycleGAN(tiny_config(), CPU)
    save(model, path)
    before = path.read_bytes()
    model.step(batch(1), batch(2))

    def crash(*args):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        save(model, path)
    monkeypatch.undo()
    assert path.read_bytes() == before  # the old checkpoint is intact and loads
    assert set(load(CycleGAN(tiny_config(), CPU), path)) == {"torch"}
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temp file left behind


def test_export_then_load_gives_identical_outputs(tmp_path):
    cfg = tiny_config()
    gens = Generators(cfg).eval()
    x = torch.rand(1, 1, 256, 40) * 2 - 1
    weights.export(tmp_path / "m", gens, cfg)
    cfg2, loaded = weights.load(tmp_path / "m")
    assert cfg2 == cfg
    with torch.no_grad():
        assert torch.equal(gens.a2b(x), loaded.a2b(x)) and torch.equal(gens.b2a(x), loaded.b2a(x))


def test_load_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        weights.load(tmp_path)


def run(toy_domains, out: Path, cfg, **kw) -> CycleGAN:
    return fit(cfg, RunOptions(*toy_domains, out=out, device="cpu", cache_dir=out.parent / "cache", **kw))


def test_a_run_validates_logs_and_keeps_its_newest_checkpoints(toy_domains, tmp_path):
    run(toy_domains, tmp_path / "r", tiny_config(steps=10, save_every=2, val_every=5, crop_frames=32), keep=2)
    assert [p.name for p in sorted((tmp_path / "r").glob("checkpoint_*"))] == [
        "checkpoint_0000008.safetensors", "checkpoint_0000010.safetensors"]
    assert sorted(p.name for p in (tmp_path / "r" / "samples").iterdir()) == ["step_0000005.png", "step_0000010.png"]
    rows = (tmp_path / "r" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["step", "5", "10"]  # one row per step, losses and scores
    assert all(field != "" for field in rows[2].split(","))  # step 10 logs and validates
    assert list((tmp_path / "r" / "tensorboard").iterdir())


def test_snapshots_and_a_time_limit(toy_domains, tmp_path, capsys):
    cfg = tiny_config(steps=50, save_every=100, val_every=100, crop_frames=32)
    model = run(toy_domains, tmp_path / "r", cfg, snapshot_every=2, time_limit=0.0)  # stops after one step
    assert model.step_count == 1 and "time limit reached at step 1" in capsys.readouterr().out
    assert find_checkpoint(tmp_path / "r").tree["step"] == 1  # a checkpoint to resume from
    model = run(toy_domains, tmp_path / "r", tiny_config(steps=4, crop_frames=32), resume=True, snapshot_every=2)
    snaps = sorted(p.name for p in (tmp_path / "r" / "snapshots").iterdir())
    assert snaps == ["step_0000002", "step_0000004"]
    _, gens = weights.load(tmp_path / "r" / "snapshots" / "step_0000004")  # loads like weights/NAME/
    for x, y in zip(model.gens.state_dict().values(), gens.state_dict().values()):
        assert torch.equal(x, y)


def test_a_resumed_log_keeps_its_columns(tmp_path):
    old = "step,seconds,lr,g_adv,cycle,identity,d,val_cycle_a,val_cycle_b\n1,0.5,0.0002,1,2,3,4,,\n"
    (tmp_path / "log.csv").write_text(old)  # written with other columns than today's
    log = RunLog(tmp_path, 1)
    log.write(2, {"seconds": 1.0, "lr": 1e-4, "g_adv": 0.5, "cycle": 0.1, "identity": 0.2, "extra": 0.3, "d": 0.4})
    log.close()
    assert (tmp_path / "log.csv").read_text() == old + "2,1.0,0.0001,0.5,0.1,0.2,0.4,,\n"
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "log.csv").write_text("")  # a run killed before its first row
    RunLog(tmp_path / "new", 0).close()
    assert (tmp_path / "new" / "log.csv").read_text().startswith("step,seconds,lr,g_adv,cycle,identity,d")


def test_run_exports_weights_the_translator_loads(toy_domains, tmp_path):
    run(toy_domains, tmp_path / "run", tiny_config(steps=2, val_every=2, crop_frames=32),
        export="toy", weights_root=tmp_path / "weights")
    dirs = weights.directions(tmp_path / "weights")
    assert [d.value for d in dirs] == ["piano2guitar", "guitar2piano"]
    assert find_checkpoint(tmp_path / "run").tree["step"] == 2


def test_a_channels_last_model_resumes_with_fused_adam(tmp_path):
    """CUDA trains channels-last; the saved Adam moments are contiguous and must be brought
    back to each parameter's strides, or fused Adam refuses the first resumed step."""
    def channels_last(model: CycleGAN) -> CycleGAN:
        model.gens.to(memory_format=torch.channels_last)
        model.discs.to(memory_format=torch.channels_last)
        return model

    a, b = batch(1), batch(2)
    model = channels_last(CycleGAN(tiny_config(), CPU))
    model.step(a, b)
    save(model, tmp_path / "ckpt.safetensors")
    resumed = channels_last(CycleGAN(tiny_config(), CPU))
    load(resumed, tmp_path / "ckpt.safetensors")
    conv = resumed.gens.a2b.net[1][0].weight  # several input channels: channels-last strides differ
    assert resumed.opt_g.state[conv]["exp_avg"].stride() == conv.stride() != conv.contiguous().stride()
    assert resumed.step(a, b).losses == model.step(a, b).losses
