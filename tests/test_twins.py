"""Twin inputs: driven guitars fed to the B->A generator and cycled back to their clean twins."""
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from cyclegan.config import Config
from cyclegan.data import DataError, Twins, TwinSampler, join_twins, load_twins
from cyclegan.fit import RunError, RunOptions, fit
from cyclegan.models import Generators
from conftest import tiny_config, write_tones
from faultkit import assert_same, cache, config, no_figures, train  # noqa: F401


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    root = tmp_path_factory.mktemp("twins")
    write_tones(root / "driven", 4, "b")
    t = np.arange(int(1.5 * 25_000)) / 25_000
    (root / "clean").mkdir()
    for i, p in enumerate(sorted((root / "driven").iterdir())):
        sf.write(root / "clean" / p.name, 0.4 * np.sin(2 * np.pi * 220 * 2 ** (i / 12) * t), 25_000)
    return root / "driven", root / "clean"


def pairs(n: int = 3, frames: int = 40) -> Twins:
    rng = np.random.default_rng(0)
    x = [rng.uniform(-1, 1, (8, frames + i)).astype(np.float16) for i in range(n)]
    return Twins(None, None, pairs=[(a, a + np.float16(1)) for a in x])


def test_the_sampler_swaps_the_asked_share_for_aligned_twin_crops():
    b = torch.full((64, 1, 8, 16), -5.0)
    inputs, targets = TwinSampler(pairs(), 16, 0.5, seed=3).mix(b)
    swapped = (inputs != -5).flatten(1).all(1)
    assert inputs.shape == targets.shape == b.shape
    assert 20 < int(swapped.sum()) < 44  # about half of 64
    assert torch.allclose(targets[swapped], inputs[swapped] + 1, atol=1e-2)  # the same crop of each twin
    assert torch.equal(inputs[~swapped], b[~swapped]) and torch.equal(targets[~swapped], b[~swapped])
    again = TwinSampler(pairs(), 16, 0.5, seed=3).mix(b)
    assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)
    none = TwinSampler(pairs(), 16, 0.0, seed=3).mix(b)
    assert torch.equal(none[0], b) and torch.equal(none[1], b)


def test_a_missing_twin_is_named(twins, tmp_path):
    clean = tmp_path / "clean"
    shutil.copytree(twins[1], clean)
    (clean / "b1.wav").unlink()
    cfg = tiny_config(crop_frames=32)
    with pytest.raises(DataError, match=f"^{clean}: no twin for 1 file\\(s\\) of {twins[0]} \\(e.g. b1.wav\\); "
                                        "each input needs a same-named target$"):
        load_twins(twins[0], clean, Config().spec, cfg.train, None)
    got = load_twins(*twins, Config().spec, cfg.train, None)
    assert len(got.pairs) == 3  # one of the four is the validation split's
    assert all(x.shape == y.shape for x, y in got.pairs)


def test_the_generators_translate_the_twin_input_and_keep_the_identity_on_the_target():
    torch.manual_seed(0)
    gens = Generators(tiny_config()).eval()
    a, b, b_in = (torch.rand(2, 1, 256, 32) * 2 - 1 for _ in range(3))
    with torch.no_grad():
        plain, twin = gens(a, b), gens(a, b, b_in=b_in)
        assert torch.allclose(twin["fake_a"], gens.b2a(b_in), atol=1e-6)
        assert torch.allclose(twin["rec_b"], gens.a2b(twin["fake_a"]), atol=1e-6)
    assert torch.equal(twin["idt_b"], plain["idt_b"]) and torch.equal(twin["fake_b"], plain["fake_b"])
    assert not torch.allclose(twin["fake_a"], plain["fake_a"])


def test_a_run_with_twins_resumes_exactly(toy_domains, twins, cache, tmp_path):
    whole = train(toy_domains, tmp_path / "whole", cache, steps=6, twins_b=(twins,))
    train(toy_domains, tmp_path / "parts", cache, steps=4, twins_b=(twins,))
    assert_same(whole, train(toy_domains, tmp_path / "parts", cache, steps=6, twins_b=(twins,), resume=True))
    without = train(toy_domains, tmp_path / "plain", cache, steps=6)
    assert any(not torch.equal(p, q) for p, q in zip(without.gens.b2a.parameters(), whole.gens.b2a.parameters()))


def test_adding_twins_on_resume_is_a_data_change(toy_domains, twins, cache, tmp_path, capsys):
    out = tmp_path / "run"
    train(toy_domains, out, cache, steps=2)
    with pytest.raises(RunError, match=f"^--resume would change twin inputs added \\({twins[0]}\\)"):
        train(toy_domains, out, cache, steps=4, twins_b=(twins,), resume=True)
    opts = RunOptions(*toy_domains, out=out, device="cpu", cache_dir=cache, resume=True, allow_data_change=True,
                      twins_b=(twins,))
    assert fit(config(4), opts).step_count == 4
    assert f"continuing with twin inputs added ({twins[0]})" in capsys.readouterr().out


def test_joined_twin_pairs_pool_their_crops_and_a_new_pair_on_resume_is_a_data_change(
        toy_domains, twins, cache, tmp_path, capsys):
    cfg = tiny_config(crop_frames=32)
    one = load_twins(*twins, Config().spec, cfg.train, None)
    two = join_twins([one, load_twins(*twins, Config().spec, cfg.train, None)])
    assert len(two.pairs) == 2 * len(one.pairs) and (two.inputs, two.targets) == (one.inputs, one.targets)
    assert two.files == f"{one.files} + {one.files}" and join_twins([one]) is one
    out = tmp_path / "run"
    train(toy_domains, out, cache, steps=2, twins_b=(twins,))
    with pytest.raises(RunError, match=f"^--resume would change domain TWIN {twins[0]}, {twins[0]} "
                                       f"\\(was {twins[0]}\\)"):
        train(toy_domains, out, cache, steps=4, twins_b=(twins, twins), resume=True)
    opts = RunOptions(*toy_domains, out=out, device="cpu", cache_dir=cache, resume=True, allow_data_change=True,
                      twins_b=(twins, twins))
    assert fit(config(4), opts).step_count == 4
