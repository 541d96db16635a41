"""The one config object. Every STFT setting is written here and nowhere else.

It is saved next to every checkpoint and every exported model, and whatever
serves a model reads it back from there, so training and serving cannot
disagree about how a spectrogram is made.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np


def from_known(kind: type, values: dict[str, Any]) -> Any:
    """Build dataclass `kind` from `values`, ignoring keys it does not know (older/newer files,
    e.g. fields of experiments that were removed)."""
    known = {f.name for f in fields(kind)}
    return kind(**{k: v for k, v in values.items() if k in known})


@dataclass
class SpecConfig:
    sample_rate: int = 25_000
    n_fft: int = 511  # odd so that the one-sided spectrum has exactly 256 bins
    # hop 128 = 4x overlap of the 511-sample Hann window: the overlap-add is
    # (near) constant, so ISTFT with the input phase is transparent, and a
    # 5 ms frame step keeps onsets sharp.
    hop_length: int = 128
    # Log-magnitude is mapped from [-db_range, 0] dB re full scale to [-1, 1],
    # matching the generator's tanh output; quieter bins are clipped.
    db_range: float = 100.0

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def bin_hz(self) -> np.ndarray:
        """Each bin's centre frequency."""
        return np.arange(self.n_freq) * self.sample_rate / self.n_fft

    def bin_at(self, hz: float) -> int:
        """The first bin at or above `hz`."""
        return math.ceil(hz * self.n_fft / self.sample_rate)


@dataclass
class ModelConfig:
    # "212": 2-D conv encoder, frequency folded into channels, 1-D residual
    # bottleneck over time, 2-D decoder (CycleGAN-VC2's 2-1-2D layout) - the
    # fast default.  "resnet": the original all-2-D CycleGAN generator, kept
    # for comparison (use ngf=64, n_blocks=9 for the reference size).
    arch: str = "212"
    ngf: int = 8
    n_down: int = 2
    n_blocks: int = 6
    # Residual blocks dilated 2, 4, 8, ... after n_blocks ("212" only): the generator hears
    # further in time (a held note's onset) at the same cost per block; they start as the identity.
    long_blocks: int = 0
    bottleneck: int = 192  # channels of the 1-D bottleneck ("212" only)
    # Nearest-neighbour up-sampling + conv avoids transposed-conv checkerboards.
    upsample: str = "nearest"  # or "transpose"
    # Add the input to the generator's output before the tanh: the generator then starts
    # as the identity and only has to learn the timbre change, and the notes (fine harmonic
    # detail) need not squeeze through the bottleneck.  False = the report's plain generator.
    skip: bool = True
    ndf: int = 16
    d_layers: int = 3  # 3 strided layers + 2 = the 70x70 PatchGAN


@dataclass
class TrainConfig:
    steps: int = 20_000
    batch_size: int = 2
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_decay: bool = True  # linear decay to 0 over the second half
    crop_frames: int = 64  # 0.33 s: timbre is local, and short crops keep a CPU step cheap
    lambda_cycle: float = 10.0
    lambda_identity: float = 5.0  # half the cycle weight, as in CycleGAN
    # What the cycle loss compares: "log" (the model's dB scale), "linear" (magnitudes: the
    # report's metric) or "cbrt" (cube-root magnitudes); see training.cycle_distance.
    cycle_loss: str = "log"
    # Steps at the start of a run in which only the discriminators learn. A fine-tune
    # (train.py --init-from) from a folder without discriminators starts with random ones, whose
    # first gradients knock a trained generator off course; a warm-up lets them learn its fakes
    # first, but measured, even 2000 steps did not keep the transfer (docs/evaluation.md).
    d_warmup: int = 0
    pool_size: int = 50
    # With twin folders (train.py --b-twins), the share of B inputs to the B->A generator that are
    # twin inputs (driven guitars) cycled back to their targets (the clean twins), not to themselves.
    twin_fraction: float = 0.5
    # Random EQ on every training crop (augment.RandomEQ): up to this many dB up or down at six
    # log-spaced frequencies, so the model meets a new microphone at every step. 0 turns it off.
    eq_db: float = 0.0
    val_files: int = 50
    val_fraction: float = 0.08
    val_every: int = 500
    save_every: int = 500
    seed: int = 0


def check_strength(strength: float) -> None:
    """Config.strength's range: 1 runs each generator once, 2 again on its own output (docs/evaluation.md)."""
    if not 1 <= strength <= 2:
        raise ValueError(f"strength must be between 1 and 2, not {strength!r}")


@dataclass
class Config:
    spec: SpecConfig = field(default_factory=SpecConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name_a: str = "piano"
    name_b: str = "guitar"
    # translate's default strength for this model (1 to 2; above 1, part of a second pass): set by
    # `python -m cyclegan.pick --strength ... --write-strength` on the selection set, 1 until then
    strength: float = 1.0
    # guitar→piano adds sub-bass that the same notes on a piano lack: a translation's bins below
    # bass_cap_hz stay at most bass_cap_db over its input's (0 Hz: off; set by `pick --bass-cap-hz`)
    bass_cap_hz: float = 0.0
    bass_cap_db: float = 6.0
    # a held guitar note outlasts the generators' reach and stays flat; a struck string decays. On request
    # (translate's `decay`), translations into decay_into ("": none) get audio.decay with these settings
    decay_into: str = ""
    decay_db_s: float = 40.0
    decay_max_db: float = 10.0
    decay_min_hz: float = 0.0

    def decays(self, target: str) -> bool:
        """Whether a translation into `target` may take the decay (the instrument `decay_into` names)."""
        return bool(target) and target == self.decay_into

    def check_decay(self, target: str) -> None:
        if not self.decays(target):  # the model's config.json names the one instrument it decays into
            raise ValueError(f"the decay applies to translations into {self.decay_into or 'none'}, not {target}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        return cls(
            spec=from_known(SpecConfig, d.get("spec", {})),
            model=from_known(ModelConfig, d.get("model", {})),
            train=from_known(TrainConfig, d.get("train", {})),
            name_a=d.get("name_a", "a"),
            name_b=d.get("name_b", "b"),
            strength=float(d.get("strength", cls.strength)),  # the field defaults, for older configs
            bass_cap_hz=float(d.get("bass_cap_hz", cls.bass_cap_hz)),
            bass_cap_db=float(d.get("bass_cap_db", cls.bass_cap_db)),
            decay_into=str(d.get("decay_into", cls.decay_into)),
            **{k: float(d.get(k, getattr(cls, k))) for k in ("decay_db_s", "decay_max_db", "decay_min_hz")},
        )

    def save(self, path: Path) -> None:
        from .store import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: Path) -> "Config":
        return cls.from_dict(json.loads(Path(path).read_text()))
