"""Spectrogram figures, shared by the training grids and the app."""
from __future__ import annotations

from pathlib import Path

import librosa.display
import numpy as np
from matplotlib.figure import Figure  # not pyplot: no global state, safe in a threaded server

from .audio import full_scale
from .config import SpecConfig

Panel = tuple[str, np.ndarray]  # (title, linear magnitude (n_freq, frames))


def to_db(magnitude: np.ndarray, spec: SpecConfig) -> np.ndarray:
    """dB relative to full scale: a full-scale sine peaks at 0 dB."""
    return 20 * np.log10(np.maximum(magnitude / full_scale(spec), 1e-10))


def db_range(magnitudes: list[np.ndarray], spec: SpecConfig, span: float = 80.0) -> tuple[float, float]:
    """One colour range for several spectrograms so that they can be compared by eye."""
    top = max(float(to_db(m, spec).max()) for m in magnitudes)
    return top - span, top


def grid(rows: list[list[Panel]], spec: SpecConfig, vrange: tuple[float, float] | None = None,
         panel_size: tuple[float, float] = (4.0, 2.6)) -> Figure:
    vmin, vmax = vrange or db_range([m for row in rows for _, m in row], spec)
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig = Figure(figsize=(panel_size[0] * n_cols, panel_size[1] * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    image = None
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            if c >= len(row):
                ax.axis("off")
                continue
            title, mag = row[c]
            image = librosa.display.specshow(to_db(np.asarray(mag), spec), sr=spec.sample_rate, hop_length=spec.hop_length,
                                             n_fft=spec.n_fft, x_axis="time", y_axis="hz", ax=ax,
                                             vmin=vmin, vmax=vmax, cmap="magma")
            ax.set(title=title, xlabel="Time (s)", ylabel="Frequency (Hz)")
    if image is not None:
        fig.colorbar(image, ax=axes, format="%+.0f dB", shrink=0.9)
    return fig


def save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    return path
