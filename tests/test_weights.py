"""Exported model folders and the directions found under weights/."""
from pathlib import Path

import pytest
import torch

from cyclegan import weights
from cyclegan.models import Discriminators, Generators
from cyclegan.store import read_tensors
from conftest import tiny_config


def test_directions_are_values_with_source_and_target_names_even_with_a_2_in_them(tmp_path: Path):
    cfg = tiny_config()
    cfg.name_a, cfg.name_b = "c2c", "drums"
    weights.export(tmp_path / "c2c_drums", Generators(cfg), cfg)
    fwd, back = weights.directions(tmp_path)
    assert (fwd.source, fwd.target, fwd.reverse) == ("c2c", "drums", False)
    assert (back.source, back.target, back.reverse) == ("drums", "c2c", True)
    assert (fwd.value, fwd.round_trip, back.round_trip) == ("c2c2drums", "c2c2drums2c2c", "drums2c2c2drums")
    assert back.label == "Drums → C2C" and fwd.model_dir == back.model_dir == tmp_path / "c2c_drums"


def test_export_writes_float32_safetensors_that_load_back_exactly(tmp_path: Path):
    cfg = tiny_config()
    gens = Generators(cfg)
    weights.export(tmp_path / "m", gens, cfg)
    _, loaded = weights.load(tmp_path / "m")
    for (k, v), (k2, w) in zip(gens.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and w.dtype == torch.float32 and torch.equal(v, w)
    assert not list((tmp_path / "m").glob("*.tmp"))


def test_export_writes_the_discriminators_when_given_and_never_leaves_stale_ones(tmp_path: Path):
    cfg = tiny_config()
    discs = Discriminators(cfg)
    weights.export(tmp_path / "m", Generators(cfg), cfg, discs)
    saved = read_tensors(tmp_path / "m" / weights.DISCS_FILE)
    assert saved.keys() == discs.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in discs.state_dict().items())
    weights.export(tmp_path / "m", Generators(cfg), cfg)  # another export without them: theirs must go
    assert not (tmp_path / "m" / weights.DISCS_FILE).exists()
    weights.load(tmp_path / "m")  # serving needs only the generators


def test_a_folder_without_weights_says_how_to_make_them(tmp_path: Path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"generators.safetensors is missing; export a model with"):
        weights.load(tmp_path)
