"""What the fault tests share: a tiny 6-step run, probes that inject a fault at a chosen phase
of a chosen step, and ways to damage a checkpoint file."""
import os
from pathlib import Path

import pytest
import torch

from cyclegan import fit as fit_module
from cyclegan.fit import RunOptions, fit
from cyclegan.training import CycleGAN
from conftest import tiny_config


def config(steps: int = 6):
    # no lr decay: a run of 4 steps is then the start of a run of 6; pool 2 so old fakes come back
    return tiny_config(steps=steps, save_every=2, val_every=3, crop_frames=32, pool_size=2, lr_decay=False)


def _no_figure(fig, path) -> None:
    fig.clear()


@pytest.fixture(autouse=True)
def no_figures(monkeypatch):
    """Drawing the sample grid is most of a tiny run's time and none of these faults."""
    monkeypatch.setattr(fit_module.plots, "save", _no_figure)


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def train(domains, out: Path, cache: Path, steps: int = 6, probe=None, **kw) -> CycleGAN:
    opts = RunOptions(*domains, out=out, device="cpu", cache_dir=cache, **kw)
    return fit(config(steps), opts, probe)


def at(phase: str, done: int, action):
    """A probe that runs `action(model)` once, in `phase` of the step after `done` steps."""
    fired = []

    def probe(p, model):
        if p == phase and model.step_count == done and not fired:
            fired.append(p)
            action(model)
    return probe


def kill(sig):
    return lambda model: os.kill(os.getpid(), sig)


def tensors(model: CycleGAN) -> dict[str, torch.Tensor]:
    return {**{f"g.{k}": v for k, v in model.gens.state_dict().items()},
            **{f"d.{k}": v for k, v in model.discs.state_dict().items()}}


def assert_same(model: CycleGAN, other: CycleGAN) -> None:
    want, got = tensors(model), tensors(other)
    assert want.keys() == got.keys()
    assert [k for k in want if not torch.equal(want[k], got[k])] == []


_STRAIGHT: list[tuple[CycleGAN, Path]] = []  # one run for every module that imports the fixture


@pytest.fixture(scope="session")
def straight(toy_domains, cache, tmp_path_factory):
    """The uninterrupted run every interrupted one must end equal to."""
    if not _STRAIGHT:
        out = tmp_path_factory.mktemp("straight")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(fit_module.plots, "save", _no_figure)
            _STRAIGHT.append((train(toy_domains, out, cache), out))
    return _STRAIGHT[0]


def poison(module_name: str):
    def action(model):
        with torch.no_grad():
            for p in getattr(model, module_name).parameters():
                p.fill_(float("nan"))
    return action


def damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    body = 8 + int.from_bytes(data[:8], "little")  # safetensors: header length, JSON header, tensors
    if how == "flip":
        g = torch.Generator().manual_seed(0)
        data[body + 100:body + 1100] = torch.randint(256, (1000,), generator=g, dtype=torch.uint8).numpy().tobytes()
    elif how == "truncate":
        data = data[:len(data) // 2]
    elif how == "zero":
        data = bytearray(len(data))
    elif how == "header":
        data[10:40] = b"x" * 30
    path.write_bytes(bytes(data))
