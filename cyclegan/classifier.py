"""An independent instrument classifier, to judge translations (not the CycleGAN's discriminator).

    python -m cyclegan.classifier --out weights/instrument_classifier [--data data/classifier-corpus]
    (the recipe and its leave-one-family-out validation: cyclegan/judge_recipe.py)

A small CNN over ~1 s log-mel windows; a clip's label comes from the mean of its windows' logits.
Every window is floored 80 dB below its peak and has each mel band's mean removed, so neither the
level nor a fixed EQ matters, and training adds random EQ curves and noise floors so that it keys
on the instrument rather than the mix.
The CLI renders its own corpus (another seed than the CycleGAN's), trains on 75 % of it and
reports the accuracy on the held-out 25 %. Stored as safetensors + JSON: nothing pickled.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import audio
from .config import from_known
from .store import REPO_ROOT, atomic_write_text, read_tensors, repo_relative, require_files, write_tensors

WEIGHTS_FILE, CONFIG_FILE = "classifier.safetensors", "classifier.json"
DEFAULT_DIR = REPO_ROOT / "weights" / "instrument_classifier"


@dataclass
class ClassifierConfig:
    sample_rate: int = 25_000
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 64
    fmin: float = 30.0
    fmax: float = 11_000.0
    floor_db: float = 80.0  # everything further below a window's peak is clipped
    window_frames: int = 128  # ~1.3 s of audio per window
    width: int = 16  # channels of the first conv layer (doubling twice)
    # subtract each mel band's mean over the window: a microphone's EQ or a sample set's colour
    # is a constant per band, so the decision rests on how each band moves (attack, decay, vibrato)
    band_norm: bool = True
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0


class Net(nn.Module):
    """Four 3x3 conv blocks (three 2x2 max-pools), global mean+max pooling, one linear layer."""

    def __init__(self, cfg: ClassifierConfig, n_classes: int):
        super().__init__()
        ch, layers = [1, cfg.width, 2 * cfg.width, 4 * cfg.width, 4 * cfg.width], []
        for i in range(4):
            layers += [nn.Conv2d(ch[i], ch[i + 1], 3, padding=1), nn.BatchNorm2d(ch[i + 1]), nn.ReLU()]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
        self.features, self.head = nn.Sequential(*layers), nn.Linear(2 * ch[-1], n_classes)
        self.floor_db, self.band_norm = cfg.floor_db, cfg.band_norm

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_mels, frames) log-mel in dB -> (batch, 2 * channels) pooled features."""
        peak = x.amax(dim=(-1, -2), keepdim=True)
        x = torch.maximum(x, peak - self.floor_db)
        x = (x - x.mean(dim=(-1,) if self.band_norm else (-1, -2), keepdim=True)) / 20  # level-free, ~unit scale
        h = self.features(x[:, None])
        return torch.cat([h.mean((-1, -2)), h.amax((-1, -2))], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_mels, frames) log-mel in dB -> (batch, classes) logits."""
        return self.head(self.embed(x))


class Frontend:
    """Waveform -> log-mel (dB) with the classifier's own STFT settings (not the CycleGAN's)."""

    def __init__(self, cfg: ClassifierConfig):
        self.cfg = cfg
        self.window = torch.hann_window(cfg.n_fft)
        self.mel = torch.from_numpy(librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels,
                                                        fmin=cfg.fmin, fmax=cfg.fmax)).float()

    def __call__(self, wave: np.ndarray, sr: int) -> torch.Tensor:
        wave = audio.conform(wave, sr, self.cfg.sample_rate)
        wave, _ = audio.normalise(wave)
        x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
        power = torch.stft(x, self.cfg.n_fft, self.cfg.hop_length, window=self.window, return_complex=True).abs() ** 2
        logmel = 10 * torch.log10(self.mel @ power + 1e-10)
        short = self.cfg.window_frames - logmel.shape[1]
        if short > 0:  # shorter than one window: pad with the clip's own floor
            logmel = F.pad(logmel, (0, short), value=float(logmel.min()))
        return logmel


class Classifier:
    def __init__(self, cfg: ClassifierConfig, classes: list[str], net: Net | None = None, info: dict | None = None):
        self.cfg, self.classes, self.info = cfg, list(classes), dict(info or {})
        self.net = (net or Net(cfg, len(classes))).eval()
        self.frontend = Frontend(cfg)

    def _windows(self, logmel: torch.Tensor) -> torch.Tensor:
        """One clip's log-mel as windows that overlap by half (the last one flush with the end)."""
        T = self.cfg.window_frames
        starts = list(range(0, logmel.shape[1] - T + 1, T // 2))
        if starts[-1] != logmel.shape[1] - T:
            starts.append(logmel.shape[1] - T)
        return torch.stack([logmel[:, s:s + T] for s in starts])

    @torch.inference_mode()
    def logits(self, logmel: torch.Tensor) -> torch.Tensor:
        """Mean window logits of one clip's log-mel."""
        return self.net(self._windows(logmel)).mean(0)


    def predict_proba(self, wave: np.ndarray, sr: int) -> dict[str, float]:
        p = torch.softmax(self.logits(self.frontend(wave, sr)), 0)
        return {c: float(v) for c, v in zip(self.classes, p)}

    @torch.inference_mode()
    def judge(self, wave: np.ndarray, sr: int) -> tuple[str, np.ndarray]:
        """(predicted class, penultimate features) of one clip, in one pass."""
        h = self.net.embed(self._windows(self.frontend(wave, sr)))
        k = int(self.net.head(h).mean(0).argmax())
        return self.classes[k], h.mean(0).numpy().astype(np.float64)

    def predict(self, wave: np.ndarray, sr: int) -> str:
        proba = self.predict_proba(wave, sr)
        return max(proba, key=proba.get)

    def accuracy(self, folders: dict[str, list[Path]], desc: str = "classifying") -> float:
        """Share of files predicted as the class they are filed under."""
        items = [(c, p) for c, paths in folders.items() for p in paths]
        hits = [self.predict(audio.load(p, self.cfg.sample_rate), self.cfg.sample_rate) == c
                for c, p in tqdm(items, desc=desc, leave=False, disable=len(items) < 50)]
        return float(np.mean(hits)) if hits else float("nan")

    def save(self, out_dir: Path) -> Path:
        out_dir = Path(out_dir)
        write_tensors(out_dir / WEIGHTS_FILE, self.net.state_dict(), {"classes": json.dumps(self.classes)})
        meta = {"config": asdict(self.cfg), "classes": self.classes, **self.info}
        atomic_write_text(out_dir / CONFIG_FILE, json.dumps(meta, indent=2))
        return out_dir

    @classmethod
    def load(cls, model_dir: Path = DEFAULT_DIR) -> "Classifier":
        model_dir = Path(model_dir)
        require_files(model_dir, (CONFIG_FILE, WEIGHTS_FILE),
                      f"train one with `python -m cyclegan.classifier --out {repo_relative(model_dir)}`")
        meta = json.loads((model_dir / CONFIG_FILE).read_text())
        cfg = from_known(ClassifierConfig, meta.pop("config"))
        classes = meta.pop("classes")
        net = Net(cfg, len(classes))
        net.load_state_dict(read_tensors(model_dir / WEIGHTS_FILE))
        return cls(cfg, classes, net, meta)


def load(model_dir: Path = DEFAULT_DIR) -> Classifier:
    return Classifier.load(model_dir)


def _shift_bands(x: torch.Tensor, rng: np.random.Generator, most: int = 4) -> torch.Tensor:
    """Move the log-mel up or down by up to `most` bands (edges repeated): about a tone per band
    in the mids, so a sample set's register and formants stop being a clue."""
    s = int(rng.integers(-most, most + 1))
    return x[(torch.arange(x.shape[0]) - s).clamp(0, x.shape[0] - 1)]


def _augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A random shift along the mel axis, random gain, a smooth random EQ across it (tilt, bow
    and a few bumps, dB, strong enough that a fixed EQ of one instrument towards the other cannot
    fool it), a noise floor and per-bin jitter."""
    x = _shift_bands(x, rng)
    f = torch.linspace(-1, 1, x.shape[0])[:, None]
    curve = float(rng.uniform(-15, 15)) * f + float(rng.uniform(-8, 8)) * f ** 2
    for _ in range(3):
        curve = curve + float(rng.uniform(-6, 6)) * torch.cos(np.pi * (float(rng.uniform(1, 4)) * f + float(rng.uniform(0, 2))))
    x = x + float(rng.uniform(-20, 20)) + curve
    x = torch.maximum(x, x.max() - float(rng.uniform(45, 80)))
    return x + float(rng.uniform(0, 1.5)) * torch.randn(x.shape)


def recorded_copy(wave: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """A copy of a clip re-recorded under a random laptop-like draw (room, small mic, codec)."""
    from .conditions import draw, record

    rng = np.random.default_rng(seed)
    return record(wave, draw(rng, "laptop"), sr, rng)


def fit(clf: Classifier, specs: list[torch.Tensor], labels: list[int], progress: bool = True) -> Classifier:
    """Train `clf.net` on log-mels of clips and their class indices: random windows of random clips
    (classes balanced), augmented, Adam with a one-cycle LR."""
    cfg = clf.cfg
    if len(set(labels)) < 2:
        raise ValueError("need audio files of at least two classes")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    weights = 1.0 / np.bincount(labels)[labels]
    net, T, start = clf.net.train(), cfg.window_frames, time.perf_counter()
    opt = torch.optim.Adam(net.parameters(), cfg.lr / 25)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps)
    bar = tqdm(range(cfg.steps), desc="training classifier", disable=not progress)
    for _ in bar:
        idx = rng.choice(len(specs), cfg.batch_size, p=weights / weights.sum())
        batch = []
        for i in idx:
            s = int(rng.integers(specs[i].shape[1] - T + 1))
            batch.append(_augment(specs[i][:, s:s + T], rng))
        loss = F.cross_entropy(net(torch.stack(batch)), torch.as_tensor(np.asarray(labels)[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    clf.net.eval()
    clf.info["train_seconds"] = round(time.perf_counter() - start, 1)
    return clf


def train_classifier(folders: dict[str, list[Path]], cfg: ClassifierConfig | None = None,
                     progress: bool = True, recorded: bool = False) -> Classifier:
    """Train on {class name: audio files} (with `recorded`, each also re-recorded under a random
    laptop-like draw); random windows of random files, Adam, one-cycle LR."""
    cfg = cfg or ClassifierConfig()
    classes = list(folders)
    torch.manual_seed(cfg.seed)
    clf = Classifier(cfg, classes)
    specs, labels = [], []
    for k, c in enumerate(classes):
        for i, p in enumerate(tqdm(folders[c], desc=f"log-mel {c}", leave=False, disable=not progress)):
            wave = audio.load(p, cfg.sample_rate)
            for w in [wave, recorded_copy(wave, cfg.sample_rate, cfg.seed * 100_003 + 7 * i + k)][: 1 + recorded]:
                specs.append(clf.frontend(w, cfg.sample_rate))
                labels.append(k)
    fit(clf, specs, labels, progress)
    clf.info["train_files"] = {c: len(folders[c]) for c in classes}
    return clf


if __name__ == "__main__":
    from .judge_recipe import main

    sys.exit(main())
