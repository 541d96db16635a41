"""Spectrogram figures, shared by the training grids and the app."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import librosa.display
import matplotlib
import numpy as np
from matplotlib import font_manager
from matplotlib.figure import Figure  # not pyplot: no global state, safe in a threaded server
from PIL import Image, ImageDraw, ImageFont

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


# --- fast images for the app ------------------------------------------------
# A matplotlib figure per image per request costs ~0.4 s and hundreds of MB for a long clip;
# the app instead pools each spectrogram to the pixels it is shown at, colours it through a
# precomputed lookup table, and draws the axes and colour bar with PIL (a few ms).

PLOT_SIZE = (480, 256)  # (columns, rows) of the spectrogram itself, as displayed
MARGIN = (46, 22, 60, 34)  # left, top, right (colour bar), bottom: room for the axis labels
INK = (128, 128, 128, 255)  # mid grey reads on a light and on a dark page; the background is transparent


@lru_cache(maxsize=4)
def lookup_table(cmap: str) -> np.ndarray:
    """(256, 3) uint8 colours of a matplotlib colormap, made once."""
    return (matplotlib.colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def pool(values: np.ndarray, shape: tuple[int, int], mean: bool = False) -> np.ndarray:
    """Reduce (rows, cols) to `shape` by the max (keeps short transients visible) or the mean of
    equal blocks; an axis shorter than its target is repeated (nearest) instead."""
    for axis, n in enumerate(shape):
        size = values.shape[axis]
        if size > n:
            starts = np.linspace(0, size, n, endpoint=False).astype(int)
            if mean:
                counts = np.diff(np.append(starts, size)).reshape([-1 if a == axis else 1 for a in range(2)])
                values = np.add.reduceat(values, starts, axis=axis) / counts
            else:
                values = np.maximum.reduceat(values, starts, axis=axis)
        elif size < n:
            values = np.take(values, (np.arange(n) * size) // n, axis=axis)
    return values


def pooled_db(magnitude: np.ndarray, spec: SpecConfig) -> np.ndarray:
    """The display-size dB image of a linear magnitude: pooled first, so no full-size dB copy."""
    return to_db(pool(np.asarray(magnitude), PLOT_SIZE[::-1]), spec)


def _nice_step(span: float, max_ticks: int) -> float:
    for step in (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000):
        if span / step <= max_ticks:
            return step
    return span / max_ticks


def _ticks(lo: float, hi: float, max_ticks: int) -> np.ndarray:
    step = _nice_step(hi - lo, max_ticks)
    return np.arange(np.ceil(lo / step) * step, hi + 1e-9, step)


def _label(v: float, unit: str = "") -> str:
    return (f"{v / 1000:g}k" if abs(v) >= 1000 else f"{v:g}") + unit


def image(values: np.ndarray, vrange: tuple[float, float], cmap: str, title: str, seconds: float,
          top_hz: float, unit: str = "dB") -> Image.Image:
    """A PLOT_SIZE array (row 0 = lowest frequency) as a picture with time and frequency axes, a
    title and a colour bar; transparent around the plot so it sits on either page theme."""
    (w, h), (left, top, right, bottom) = PLOT_SIZE, MARGIN
    lo, hi = vrange
    idx = np.clip((values - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)[::-1]
    lut = lookup_table(cmap)
    canvas = Image.new("RGBA", (left + w + right, top + h + bottom), (0, 0, 0, 0))
    canvas.paste(Image.fromarray(lut[idx]), (left, top))
    bar = np.repeat(np.arange(255, -1, -1, dtype=np.uint8)[:, None], 12, 1)
    bar_x = left + w + 10
    canvas.paste(Image.fromarray(lut[pool(bar, (h, 12))]), (bar_x, top))
    draw, font = ImageDraw.Draw(canvas), _font(11)
    draw.text((left, 3), title, fill=INK, font=_font(13))
    draw.rectangle((left - 1, top - 1, left + w, top + h), outline=INK)
    for t in _ticks(0, seconds, 8):
        x = left + round(t / max(seconds, 1e-9) * (w - 1))
        draw.line((x, top + h, x, top + h + 4), fill=INK)
        draw.text((x, top + h + 5), _label(t), fill=INK, font=font, anchor="ma")
    draw.text((left + w // 2, top + h + 19), "time (s)", fill=INK, font=font, anchor="ma")
    for f in _ticks(0, top_hz, 6):
        y = top + h - 1 - round(f / top_hz * (h - 1))
        draw.line((left - 5, y, left - 1, y), fill=INK)
        draw.text((left - 7, y), _label(f), fill=INK, font=font, anchor="rm")
    draw.text((3, top + h + 19), "Hz", fill=INK, font=font)
    for v in _ticks(lo, hi, 6):
        y = top + h - 1 - round((v - lo) / (hi - lo) * (h - 1))
        draw.text((bar_x + 16, y), f"{v:+.0f}", fill=INK, font=font, anchor="lm")
    draw.text((bar_x, top - 4), unit, fill=INK, font=font, anchor="ld")
    return canvas


def save_png(picture: Image.Image, path: Path) -> Path:
    """PNG at low compression: the app's images are viewed once, and zlib level 1 is ~5x faster."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, compress_level=1)
    return path


def spectrogram_pngs(panels: dict[str, Panel], spec: SpecConfig, out: Path) -> dict[str, Path]:
    """One PNG per named (title, magnitude) panel, all on one colour scale so they compare by eye."""
    pooled = {k: pooled_db(m, spec) for k, (_, m) in panels.items()}
    top = max(float(v.max()) for v in pooled.values())
    seconds = next(iter(panels.values()))[1].shape[1] * spec.hop_length / spec.sample_rate
    return {k: save_png(image(pooled[k], (top - 80.0, top), "magma", panels[k][0], seconds, spec.sample_rate / 2),
                        Path(out) / f"{k}.png") for k in panels}


def column_change_db(after: np.ndarray, before: np.ndarray, spec: SpecConfig, cols: int,
                     block: int = 4096) -> np.ndarray:
    """(n_freq, min(cols, frames)): the dB change after - before, averaged over each of `cols`
    equal column groups; `block` frames at a time, so no full-size dB copy of a long clip."""
    frames = after.shape[1]
    starts = np.linspace(0, frames, min(cols, frames), endpoint=False).astype(int)
    bounds = np.append(starts, frames)
    out = np.empty((after.shape[0], len(starts)), np.float32)
    j = 0
    while j < len(starts):  # whole groups per block: a group never straddles two blocks
        k = max(j + 1, int(np.searchsorted(bounds, bounds[j] + block, side="right")) - 1)
        a, b = bounds[j], bounds[k]
        change = to_db(after[:, a:b], spec) - to_db(before[:, a:b], spec)
        out[:, j:k] = np.add.reduceat(change, starts[j:k] - a, axis=1) / np.diff(bounds[j:k + 1])
        j = k
    return out


def difference_png(after: np.ndarray, before: np.ndarray, spec: SpecConfig, path: Path, title: str,
                   span_db: float = 30.0) -> Path:
    """The dB change per time-frequency cell (after - before), averaged over each pixel, on a
    diverging colormap centred on 0 (dark there, so it sits on either page theme): warm where the
    translation added energy, blue where it took some."""
    change = column_change_db(after, before, spec, PLOT_SIZE[0])
    seconds = after.shape[1] * spec.hop_length / spec.sample_rate
    picture = image(pool(change, PLOT_SIZE[::-1], mean=True), (-span_db, span_db), "berlin", title, seconds,
                    spec.sample_rate / 2, unit="ΔdB")
    return save_png(picture, path)
