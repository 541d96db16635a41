"""Export a pair's two generators as ONNX graphs, for onnxruntime and other runtimes.

    python -m cyclegan.export_onnx --weights weights/piano_guitar

Writes <folder>/onnx/{a2b,b2a}.onnx (batch and time axes dynamic), manifest.json and a README.md
with the layout; every graph is checked against torch before it is written.  Needs the `onnx` and
`onnxscript` packages (requirements-dev.txt); serving the graphs needs only onnxruntime.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from . import onnx_backend as ob
from . import weights
from .config import Config
from .models import Generator
from .store import atomic_write_bytes, atomic_write_text, repo_relative

OPSET = 20
CHECK_FRAMES = (9, 301)  # odd lengths: the graph's own padding to the down-sampling factor is exercised
TOLERANCE = 1e-4  # largest |onnxruntime - torch| on the tanh scale (float32 reordering gives ~1e-6)


def trace(gen: Generator, n_freq: int) -> bytes:
    """The generator as a serialised ONNX model with dynamic batch and frame axes."""
    try:
        import onnx  # noqa: F401  (the exporter needs both; say so before torch's own error)
        import onnxscript  # noqa: F401
    except ImportError:
        raise SystemExit("error: exporting needs onnx and onnxscript: `pip install onnx onnxscript`") from None
    x = torch.zeros(2, 1, n_freq, 64)  # not 1: torch.export specialises size-1 axes
    dims = {"x": {0: torch.export.Dim("batch", min=1), 3: torch.export.Dim("frames", min=1)}}
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # e.g. "torchvision is not installed"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(gen, (x,), dynamo=True, opset_version=OPSET, dynamic_shapes=dims,
                                    input_names=[ob.INPUT], output_names=[ob.OUTPUT], verbose=False)
    return program.model_proto.SerializeToString()


def check(gen: Generator, graph: bytes, n_freq: int) -> float:
    """Largest difference to torch over a few odd lengths and a batch of two; raises past TOLERANCE."""
    import onnxruntime

    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    worst = 0.0
    for frames in CHECK_FRAMES:
        x = torch.rand(2, 1, n_freq, frames, generator=torch.Generator().manual_seed(frames)) * 2 - 1
        with torch.inference_mode():
            want = gen(x).numpy()
        got = session.run([ob.OUTPUT], {ob.INPUT: x.numpy()})[0]
        worst = max(worst, float(np.abs(got - want).max()))
    if not worst < TOLERANCE:
        raise SystemExit(f"error: the exported graph differs from torch by {worst:.2e} (> {TOLERANCE:g})")
    return worst


def readme(cfg: Config, manifest: dict) -> str:
    s = cfg.spec
    return f"""# ONNX graphs of {cfg.name_a} ↔ {cfg.name_b}

Written by `python -m cyclegan.export_onnx --weights <this model folder>` from `{manifest['weights_file']}`
(sha256 `{manifest['weights_sha256'][:16]}…`); re-export after the weights change (the onnx backend
refuses graphs whose manifest does not match the weights).

| file | translates |
|---|---|
| `a2b.onnx` | {cfg.name_a} → {cfg.name_b} |
| `b2a.onnx` | {cfg.name_b} → {cfg.name_a} |

- ONNX opset {manifest['opset']}, float32, one input and one output.
- Input `{ob.INPUT}`: (batch, 1, {s.n_freq}, frames), batch and frames dynamic (any length >= 1).
  The log-magnitude of an STFT mapped from [-{s.db_range:g}, 0] dB re full scale to [-1, 1].
- Output `{ob.OUTPUT}`: the same shape and scale, the translated log-magnitude.
- STFT (from ../config.json): {s.sample_rate} Hz mono, n_fft {s.n_fft} ({s.n_freq} bins), hop {s.hop_length},
  periodic Hann window, centred frames with reflection padding; full scale = sum(window) / 2.
- Resynthesis: the input's phase with the translated magnitude, ISTFT with the same settings.

How to run them without this package (numpy + onnxruntime only): docs/onnx.md.
"""


def export(model_dir: Path) -> dict:
    """Both graphs of one model folder, checked and written atomically; returns the manifest."""
    cfg, gens = weights.load(model_dir, "cpu")
    folder = Path(model_dir) / ob.ONNX_DIR
    checked = {}
    for name, gen in (("a2b", gens.a2b), ("b2a", gens.b2a)):
        graph = trace(gen, cfg.spec.n_freq)
        checked[name] = check(gen, graph, cfg.spec.n_freq)
        atomic_write_bytes(folder / ob.GRAPHS[name], graph)
    manifest = {"opset": OPSET, "input": ob.INPUT, "output": ob.OUTPUT,
                "layout": f"(batch, 1, {cfg.spec.n_freq}, frames) float32 in [-1, 1]",
                "graphs": {f"{cfg.name_a}2{cfg.name_b}": ob.GRAPHS["a2b"], f"{cfg.name_b}2{cfg.name_a}": ob.GRAPHS["b2a"]},
                "spec": asdict(cfg.spec), "weights_file": weights.WEIGHTS_FILE,
                "weights_sha256": ob.file_digest(Path(model_dir) / weights.WEIGHTS_FILE),
                "max_abs_diff_vs_torch": checked, "torch": torch.__version__}
    atomic_write_text(folder / "README.md", readme(cfg, manifest))
    atomic_write_text(folder / ob.MANIFEST, json.dumps(manifest, indent=2))  # last: it vouches for the graphs
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cyclegan.export_onnx", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=weights.DEFAULT_ROOT,
                    help="one model folder, or a folder of them (default: the repository's weights/)")
    args = ap.parse_args(argv)
    models = weights.find_models(args.weights)
    if not models:
        raise SystemExit(f"error: no exported model under {args.weights}; {weights.EXPORT_HINT}")
    for model_dir in models:
        manifest = export(model_dir)
        diff = max(manifest["max_abs_diff_vs_torch"].values())
        print(f"wrote {repo_relative(model_dir / ob.ONNX_DIR)}/ (opset {OPSET}, max |onnx - torch| {diff:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
