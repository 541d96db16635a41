"""Audio folders as domains: the validation split, an on-disk spectrogram cache, random crops."""
from __future__ import annotations

import hashlib
import json
import os
import random
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import audio
from .config import SpecConfig, TrainConfig


class DataError(ValueError):
    """A domain folder that cannot be trained on; the message says what to fix."""


def list_audio(folder: Path) -> list[Path]:
    try:
        return audio.list_audio(folder)
    except audio.AudioError as e:
        raise DataError(str(e)) from None


def hold_out(files: list[Path], fraction: float, seed: int, at_most: int | None = None) -> tuple[list[Path], list[Path]]:
    """A fixed, seeded hold-out of round(fraction * n) files (at least one, at most `at_most`):
    (kept, held out), each sorted."""
    order = list(files)
    random.Random(seed).shuffle(order)
    n = round(fraction * len(order))
    n = max(1, min(n, at_most) if at_most is not None else n)
    return sorted(order[n:]), sorted(order[:n])


def split(files: list[Path], cfg: TrainConfig) -> tuple[list[Path], list[Path]]:
    """The training run's validation split: min(val_files, val_fraction of the folder)."""
    if len(files) < 2:
        raise DataError(f"{files[0].parent}: need at least 2 audio files (one is held out for validation)")
    return hold_out(files, cfg.val_fraction, cfg.seed, cfg.val_files)


def _cache_key(path: Path, spec: SpecConfig) -> str:
    st = path.stat()
    ident = json.dumps([str(path.resolve()), st.st_mtime_ns, st.st_size, asdict(spec)])
    return hashlib.sha1(ident.encode()).hexdigest()


def spectrogram(path: Path, spec: SpecConfig, cache_dir: Path | None) -> np.ndarray:
    """Model-scale log-magnitude (n_freq, frames) as float16, decoded once and then memory-mapped."""
    cached = Path(cache_dir) / f"{_cache_key(path, spec)}.npy" if cache_dir else None
    if cached is not None and cached.exists():
        return np.load(cached, mmap_mode="r")
    x, _ = audio.analyse(audio.load(path, spec.sample_rate), spec)
    arr = x.numpy().astype(np.float16)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, arr)
        os.replace(tmp, cached)  # never a half-written cache entry
    return arr


@dataclass
class Domain:
    name: str
    folder: Path
    train: list[np.ndarray] = field(default_factory=list)
    val: list[np.ndarray] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    files: str = ""  # a digest of the folder's file names and sizes: resume checks the data is the same


def files_digest(folder: Path, files: list[Path]) -> str:
    listing = [[str(p.relative_to(folder)), p.stat().st_size] for p in files]
    return hashlib.sha1(json.dumps(listing).encode()).hexdigest()


def _is_silent(x: np.ndarray) -> bool:
    return float(x.max()) <= -1.0  # every bin at the floor of the dB range


def _load_many(paths: list[Path], spec: SpecConfig, cache_dir: Path | None, min_frames: int,
               skipped: dict[str, int], desc: str) -> list[np.ndarray]:
    out = []
    for p in tqdm(paths, desc=desc, leave=False, disable=len(paths) < 50):
        try:
            x = spectrogram(p, spec, cache_dir)
        except audio.AudioError as e:
            warnings.warn(f"skipping {p}: {e}", stacklevel=2)
            skipped["unreadable"] = skipped.get("unreadable", 0) + 1
            continue
        if _is_silent(x):
            warnings.warn(f"skipping {p}: the audio is silent", stacklevel=2)
            skipped["silent"] = skipped.get("silent", 0) + 1
            continue
        if x.shape[1] < min_frames:
            warnings.warn(f"skipping {p}: {x.shape[1]} frames, shorter than one crop ({min_frames})", stacklevel=2)
            skipped["too short"] = skipped.get("too short", 0) + 1
            continue
        out.append(x)
    return out


def load_domain(folder: Path, name: str, spec: SpecConfig, cfg: TrainConfig, cache_dir: Path | None,
                rank: int = 0, world: int = 1) -> Domain:
    """Each rank trains on its own share of the training files (DistributedSampler-style)."""
    files = list_audio(folder)
    train_files, val_files = split(files, cfg)
    dom = Domain(name, Path(folder), files=files_digest(Path(folder), files))
    dom.train = _load_many(train_files[rank::world], spec, cache_dir, cfg.crop_frames, dom.skipped, name)
    if not dom.train:
        raise DataError(f"{folder}: no usable audio file of at least {cfg.crop_frames} frames "
                        f"({cfg.crop_frames * spec.hop_length / spec.sample_rate:.2f} s) to train on"
                        + (f" (skipped: {_counts(dom.skipped)})" if dom.skipped else ""))
    val_skipped: dict[str, int] = {}
    dom.val = _load_many(val_files, spec, cache_dir, 1, val_skipped, f"{name} (val)")
    if not dom.val:
        raise DataError(f"{folder}: none of its {len(val_files)} validation file(s) can be used "
                        f"({_counts(val_skipped)}): {', '.join(p.name for p in val_files[:5])}; "
                        "replace or remove them")
    for k, v in val_skipped.items():
        dom.skipped[k] = dom.skipped.get(k, 0) + v
    if dom.skipped and rank == 0:
        print(f"{name}: skipped {sum(dom.skipped.values())} file(s): {_counts(dom.skipped)}")
    return dom


@dataclass
class Twins:
    """Extra B inputs whose cycle targets are other recordings: a driven guitar and its clean DI
    twin (the same notes, the same recording draw), matched by file name."""
    inputs: Path
    targets: Path
    pairs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    files: str = ""


def load_twins(inputs: Path, targets: Path, spec: SpecConfig, cfg: TrainConfig, cache_dir: Path | None,
               rank: int = 0, world: int = 1) -> Twins:
    """The training share of the input folder (its validation split is left out, as for a domain),
    each file paired with the same-named target; pairs are cut to the shorter of the two."""
    files = list_audio(inputs)
    missing = [p.name for p in files if not (Path(targets) / p.name).is_file()]
    if missing:
        raise DataError(f"{targets}: no twin for {len(missing)} file(s) of {inputs} "
                        f"(e.g. {', '.join(missing[:3])}); each input needs a same-named target")
    train_files = split(files, cfg)[0][rank::world]
    tw = Twins(Path(inputs), Path(targets), files=files_digest(Path(inputs), files))
    for p in tqdm(train_files, desc=f"twins {Path(inputs).name}", leave=False, disable=len(train_files) < 50):
        try:
            x, y = (spectrogram(q, spec, cache_dir) for q in (p, Path(targets) / p.name))
        except audio.AudioError as e:
            warnings.warn(f"skipping the twins {p.name}: {e}", stacklevel=2)
            continue
        n = min(x.shape[1], y.shape[1])
        if n >= cfg.crop_frames and not _is_silent(x) and not _is_silent(y):
            tw.pairs.append((x[:, :n], y[:, :n]))
    if not tw.pairs:
        raise DataError(f"{inputs}: no usable twin pair of at least {cfg.crop_frames} frames to train on")
    return tw


def join_twins(parts: list[Twins]) -> Twins:
    """Several twin folder pairs as one pool: crops are drawn in proportion to each pair's length."""
    if len(parts) == 1:
        return parts[0]
    return Twins(parts[0].inputs, parts[0].targets, [p for t in parts for p in t.pairs],
                 " + ".join(t.files for t in parts))


def _counts(skipped: dict[str, int]) -> str:
    return ", ".join(f"{n} {why}" for why, n in skipped.items())


class CropSampler:
    """Random fixed-length crops, files weighted by their number of crop positions."""

    def __init__(self, specs: list[np.ndarray], crop: int, seed: int):
        self.specs, self.crop = specs, crop
        self.weights = torch.tensor([s.shape[1] - crop + 1 for s in specs], dtype=torch.float64)
        self.rng = torch.Generator().manual_seed(seed)

    def sample(self, batch: int) -> torch.Tensor:
        idx = torch.multinomial(self.weights, batch, replacement=True, generator=self.rng)
        crops = []
        for i in idx.tolist():
            start = int(torch.randint(int(self.weights[i]), (), generator=self.rng))
            crops.append(crop_at(self.specs[i], start, self.crop))
        return torch.stack(crops)[:, None]


def crop_at(spec: np.ndarray, start: int, frames: int) -> torch.Tensor:
    """A float32 tensor of `frames` frames from `start` of a (memory-mapped float16) spectrogram."""
    return torch.from_numpy(np.asarray(spec[:, start:start + frames], dtype=np.float32))


class TwinSampler:
    """Swaps a share of a B batch for twin pairs: (inputs, cycle targets), cropped alike."""

    def __init__(self, twins: Twins, crop: int, fraction: float, seed: int):
        self.pairs, self.crop, self.fraction = twins.pairs, crop, fraction
        self.weights = torch.tensor([x.shape[1] - crop + 1 for x, _ in twins.pairs], dtype=torch.float64)
        self.rng = torch.Generator().manual_seed(seed)

    def mix(self, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = b.clone(), b.clone()
        for j in range(b.shape[0]):
            if float(torch.rand((), generator=self.rng)) >= self.fraction:
                continue
            i = int(torch.multinomial(self.weights, 1, generator=self.rng))
            start = int(torch.randint(int(self.weights[i]), (), generator=self.rng))
            inputs[j, 0], targets[j, 0] = (crop_at(t, start, self.crop) for t in self.pairs[i])
        return inputs, targets
