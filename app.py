"""Gradio app: translate a recording between piano and electric guitar timbre.

    python app.py [--weights weights/] [--host 127.0.0.1] [--port 7860]

A thin UI over `cyclegan.translate.Translator` and `cyclegan.plots`; all signal processing
lives in the package. The `translate` API endpoint takes (audio file, direction).
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# Before gradio is imported: no telemetry or version checks, so the app also works offline.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from cyclegan import audio, plots, weights  # noqa: E402
from cyclegan.translate import Translation, Translator  # noqa: E402

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
MAX_SECONDS = 60.0  # longer uploads are trimmed: bounds a request's time and memory on a small CPU box
CONCURRENCY = 2  # one translation per core of a 2-vCPU Space; the rest wait in the queue
QUEUE_SIZE = 64  # enough that a burst of 20+ visitors is queued rather than turned away
KEEP_OUTPUTS_S = 3600  # our wavs/pngs are copied into Gradio's cache on return; ours can go after this
EXPORT_HINT = "python train.py --export piano_guitar"
PHASES = [("Input phase (fast, keeps the attack)", "input"), ("Griffin-Lim (phase from magnitude)", "griffinlim")]

@dataclass
class App:
    """Everything loaded once at start-up: the directions and one Translator per model folder."""
    directions: dict[str, weights.Direction]
    translators: dict[Path, Translator]
    out_root: Path

    @classmethod
    def load(cls, weights_root: Path) -> App:
        found = weights.directions(weights_root)
        if not found:
            raise FileNotFoundError(f"no trained model under {weights_root}")
        translators = {d.model_dir: Translator(d.model_dir, device="cpu") for d in found}
        out_root = Path(tempfile.mkdtemp(prefix="timbre-app-"))
        atexit.register(shutil.rmtree, out_root, ignore_errors=True)
        return cls({d.value: d for d in found}, translators, out_root)

    def translate(self, audio_path: str | None, direction: str | None, phase: str = "input",
                  match_level: bool = True, progress: Callable[..., object] | None = None
                  ) -> tuple[str, str, str, str, str, str]:
        """The one handler behind the button, the examples and the API. Bad input -> gr.Error."""
        progress = progress or (lambda *a, **k: None)  # gr.Progress in a request; a no-op in tests
        if not audio_path:
            raise gr.Error("No audio: upload a file or record with the microphone first.")
        d = self.directions.get(direction or "")
        if d is None:
            raise gr.Error(f"Unknown direction {direction!r}; choose one of: {', '.join(self.directions)}.")
        tr = self.translators[d.model_dir]
        sr = tr.spec.sample_rate
        progress(0.0, desc="Reading audio")
        try:
            seconds = audio.duration(audio_path)
            raw, raw_sr = audio.read(audio_path, max_seconds=MAX_SECONDS)  # decode no more than is used
            if seconds > MAX_SECONDS:
                gr.Warning(f"The clip is {seconds:.1f} s long; only the first {MAX_SECONDS:g} s were translated.")
            wave = audio.conform(raw, raw_sr, sr, max_channels=2)
            res = tr.translate(wave, d.reverse, phase, match_level,
                               progress=lambda f, stage: progress(0.05 + 0.85 * f, desc=stage.capitalize()))
        except audio.AudioError as e:  # messages are written for the user
            raise gr.Error(f"Cannot use this audio: {e}") from None
        progress(0.92, desc="Drawing spectrograms")
        out = Path(tempfile.mkdtemp(dir=self.out_root))
        _prune(self.out_root, KEEP_OUTPUTS_S)
        return (*self._write(res, d, Path(audio_path).stem, out), _summary(res, d))

    def _write(self, res: Translation, d: weights.Direction, stem: str, out: Path) -> tuple[str, ...]:
        """Write the two wavs and three spectrogram PNGs; return their paths."""
        # Our own 16-bit files: Gradio would rescale float arrays to full scale, losing the level match.
        src, dst = d.source, d.target
        wav_t, wav_r = out / f"{stem}_{d.value}.wav", out / f"{stem}_{d.round_trip}.wav"
        audio.save(wav_t, res.translated, res.sample_rate)
        audio.save(wav_r, res.reconstructed, res.sample_rate)
        titles = {"input": f"Input ({src})", "translated": f"Translated ({dst})",
                  "reconstructed": f"Reconstructed ({src})"}
        spec = self.translators[d.model_dir].spec
        vrange = plots.db_range(list(res.magnitudes.values()), spec)  # one scale, so the three compare by eye
        images = []
        for key, title in titles.items():
            fig = plots.grid([[(title, res.magnitudes[key])]], spec, vrange, panel_size=(5.0, 3.0))
            images.append(str(plots.save(fig, out / f"{key}.png")))
        return (str(wav_t), str(wav_r), *images)


def _summary(res: Translation, d: weights.Direction) -> str:
    seconds = len(res.input) / res.sample_rate
    return (f"**{d.label}** · relative cycle error **{res.cycle_error:.3f}** (0 = the round trip "
            f"gives back the input) · {seconds:.1f} s of audio processed in {res.seconds:.2f} s")


def scores_markdown(directions: list[weights.Direction]) -> str:
    """The held-out scores of each model (its evaluation.json), so a visitor knows what to expect;
    "" when no model has been evaluated."""
    rows = []
    for d in directions:
        try:
            r = json.loads((d.model_dir / "evaluation.json").read_text())["directions"][d.value]
        except (OSError, ValueError, KeyError):
            continue
        m, ident, eq = r["model"], r["identity"]["paired_lsd_db"], r["eq"]["paired_lsd_db"]
        # a pair trained on the user's own folders usually has no paired set to measure against
        dist = (f"{m['paired_lsd_db']:.1f} dB (untouched input {ident:.1f}, fixed EQ {eq:.1f})"
                if None not in (m["paired_lsd_db"], ident, eq) else "n/a (no paired clips)")
        rows.append(f"| {d.label} | {m['transfer_accuracy']:.0%} | {m['chroma']:.2f} | {dist} |")
    if not rows:
        return ""
    return ("| direction | heard as the target instrument | notes kept (chroma, 0–1) | distance to the real "
            "instrument, lower is better |\n|---|---|---|---|\n" + "\n".join(rows) +
            "\n\nOn held-out clips of the synthetic SoundFont corpus it was trained on, judged by a separate "
            "instrument classifier (`python -m cyclegan.evaluate`). Real recordings, dense chords and "
            "distorted guitars are further from that material. Training, data and limits: the model card, "
            "`weights/<name>/README.md`.")


def _prune(root: Path, max_age_s: float) -> None:
    """Drop old per-request folders so a long-running server does not fill its disk."""
    cutoff = time.time() - max_age_s
    for p in root.iterdir():
        try:
            if p.stat().st_mtime < cutoff:
                shutil.rmtree(p, ignore_errors=True)
        except FileNotFoundError:  # another request pruned it first
            pass


def example_rows(directions: list[weights.Direction], folder: Path = EXAMPLES) -> list[list[str]]:
    """Each bundled clip with the direction that starts from its instrument (piano_1 -> piano2guitar):
    a clip is named <source>_<anything>."""
    values = [d.value for d in directions]
    rows = []
    for clip in sorted(folder.glob("*.ogg")):
        match = next((d.value for d in directions if clip.stem.startswith(f"{d.source}_")), None)
        if match:
            rows.append([str(clip), match])
    return sorted(rows, key=lambda r: values.index(r[1]))  # the default direction's clips first


def build_demo(weights_root: Path | str = weights.DEFAULT_ROOT) -> gr.Blocks:
    """The Blocks app, not launched: tests use it in-process and main() serves it."""
    app = App.load(Path(weights_root))
    choices = [(d.label, d.value) for d in app.directions.values()]
    with gr.Blocks(title="Timbre: piano ↔ guitar", analytics_enabled=False,
                   delete_cache=(3600, 7200)) as demo:
        gr.Markdown("# Timbre: piano ↔ electric guitar\nA CycleGAN changes the instrument of a recording "
                    "and keeps the notes. Upload or record a clip (up to 60 s), pick a direction, press "
                    "**Translate**, or click an example below.")
        scores = scores_markdown(list(app.directions.values()))
        if scores:
            with gr.Accordion("How good is it?", open=False):
                gr.Markdown(scores)
        with gr.Row(equal_height=True):
            direction = gr.Radio(choices, value=choices[0][1], label="Direction", scale=3)
            button = gr.Button("Translate", variant="primary", scale=1, elem_id="translate")
        with gr.Accordion("Advanced options", open=False):
            phase = gr.Radio(PHASES, value="input", label="Phase of the output")
            level = gr.Checkbox(value=True, label="Match the output level to the input")
        # Two aligned rows rather than three stacked columns: the upload box is taller than a player,
        # and this keeps the three spectrograms side by side at the same height.
        with gr.Row(equal_height=True):
            inp = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Input", elem_id="input-audio")
            out_t = gr.Audio(type="filepath", label="Translated", interactive=False, elem_id="translated-audio")
            out_r = gr.Audio(type="filepath", label="Reconstructed (translated back)", interactive=False,
                             elem_id="reconstructed-audio")
        with gr.Row():
            img_in, img_t, img_r = (gr.Image(type="filepath", format="png", label=f"{name} spectrogram",
                                             interactive=False, show_label=False,
                                             elem_id=f"{name.lower()}-spectrogram")
                                    for name in ("Input", "Translated", "Reconstructed"))
        summary = gr.Markdown(label="Summary")

        def translate(audio: str | None, direction: str | None, phase: str = "input", match_level: bool = True,
                      progress: gr.Progress = gr.Progress()) -> tuple[str, str, str, str, str, str]:
            """Translate a clip; returns translated wav, reconstructed wav, input/translated/reconstructed
            spectrogram PNGs and a one-line summary."""
            return app.translate(audio, direction, phase, match_level, progress)

        inputs, outputs = [inp, direction, phase, level], [out_t, out_r, img_in, img_t, img_r, summary]
        # One concurrency group for every path into the model, so at most CONCURRENCY run at once.
        button.click(translate, inputs, outputs, api_name="translate", concurrency_id="model")
        examples = gr.Examples(example_rows(list(app.directions.values())), [inp, direction], label="Examples",
                               cache_examples=False)
        # Run on click (one click to a result) with the user's advanced options, not the defaults.
        examples.load_input_event.then(translate, inputs, outputs, api_visibility="undocumented",
                                       concurrency_id="model")
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    return demo


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=weights.DEFAULT_ROOT, help="weights/ or one model folder")
    ap.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = ap.parse_args(argv)
    if not weights.find_models(args.weights):
        print(f"No trained model found under {args.weights}.\n"
              f"Train and export one first:\n    {EXPORT_HINT}", file=sys.stderr)
        return 1
    # SIGTERM (a container or a test stopping us) closes the server like Ctrl-C, so atexit cleans up.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    demo = build_demo(args.weights)
    demo.launch(server_name=args.host, server_port=args.port, allowed_paths=[str(EXAMPLES)],
                max_file_size="100mb", ssr_mode=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
