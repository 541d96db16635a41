"""Gradio app: translate a recording between piano and electric guitar timbre, or play live.

    python app.py [--weights weights/] [--host 127.0.0.1] [--port 7860] [--share] [--live-every 0.25] [--live-step 0.1]

A thin layout over `cyclegan.handlers` (which uses the Translator, the streaming translator and plots); all
signal processing lives in the package. The `translate` API endpoint takes (audio file,
direction, phase, match level, tone, strength, decay); only the first two are required.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from pathlib import Path

# Before gradio is imported: no telemetry or version checks, so the app also works offline.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Before torch is imported: one thread per request. CONCURRENCY requests already fill the cores, and
# two threads each on a busy 2-core box ran a translation 2.5x slower than one (set it to override).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import gradio as gr  # noqa: E402
from gradio.data_classes import FileData  # noqa: E402

from cyclegan import live_player, weights  # noqa: E402
from cyclegan.handlers import N_OUTPUTS, App, Live, example_rows  # noqa: E402
from cyclegan.scores import scores_markdown  # noqa: E402
from cyclegan.tone import has_tones  # noqa: E402

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
CONCURRENCY = 2  # one translation per core of a 2-vCPU Space; the rest wait in the queue
QUEUE_SIZE = 64  # enough that a burst of 20+ visitors is queued rather than turned away
EXPORT_HINT = "python train.py --export piano_guitar"
PHASES = [("Input phase (fast, keeps the attack)", "input"), ("Griffin-Lim (phase from magnitude)", "griffinlim")]
TONE_CHOICES = [("Clean", "clean"), ("Driven (amp and cabinet)", "driven")]
LIVE_EVERY, LIVE_SECONDS, LIVE_SESSIONS = 0.25, 120, 4  # a live session holds a worker for its whole run
# Gradio 6's microphone sends a 0.1 s slice whenever the last one was answered (its Audio component
# fixes that, whatever stream_every says), so the model runs on every slice: a longer step only waits.
LIVE_STEP = 0.1


def wav_player(**kwargs) -> gr.Audio:
    """An output player for the handlers' own 16-bit PCM wavs, served as written: gr.Audio would
    start an ffprobe process per returned file to learn whether a browser can play it. (Not a
    subclass: Gradio writes a .pyi stub beside the module of every Component subclass.)"""
    player = gr.Audio(**kwargs)
    checked = player.postprocess

    def postprocess(value: str | Path | None) -> FileData | None:
        if isinstance(value, (str, Path)) and Path(value).suffix == ".wav" and Path(value).is_file():
            return FileData(path=str(value), orig_name=Path(value).name)
        return checked(value)

    player.postprocess = postprocess
    return player


def _tone_radio(app: App, elem_id: str) -> gr.Radio:
    first = next(iter(app.directions.values()))
    return gr.Radio(TONE_CHOICES, value="clean", label="Guitar tone", visible=has_tones(first.target),
                    elem_id=elem_id, info="A translation into guitar can go through an amp and cabinet chain.")


def _follow_direction(app: App, direction: gr.Radio, tone: gr.Radio) -> None:
    """Offer the tone only where the direction ends on an instrument that has tones."""
    direction.change(lambda v: gr.update(visible=has_tones(app.direction(v).target), value="clean"),
                     direction, tone, queue=False, api_visibility="private")


def _decay_box(app: App, direction: gr.Radio, elem_id: str) -> gr.Checkbox:
    """The decay, offered only where the direction ends on the instrument its model decays (config.json)."""
    box = gr.Checkbox(False, label="Decay like a struck string", elem_id=elem_id, visible=app.decays(direction.value),
                      info="Held notes fade as a piano's do: more held guitar chords become piano, "
                           "at some cost to the notes kept (docs/evaluation.md).")
    direction.change(lambda v: gr.update(visible=app.decays(v), value=False), direction, box, queue=False,
                     api_visibility="private")
    return box


def translate_tab(app: App, choices: list[tuple[str, str]]) -> None:
    with gr.Row(equal_height=True):
        direction = gr.Radio(choices, value=choices[0][1], label="Direction", scale=3)
        button = gr.Button("Translate", variant="primary", scale=1, elem_id="translate")
    tone = _tone_radio(app, "tone")
    _follow_direction(app, direction, tone)
    first = next(iter(app.directions.values()))
    strength = gr.Slider(1, 2, value=app.translators[first.model_dir].cfg.strength, step=0.25, label="Strength",
                         elem_id="strength",
                         info="Above 1, the model runs again on its own output: more of the target instrument "
                              "(a guitar that stays a guitar turns more often), less of the input's notes kept.")
    decay = _decay_box(app, direction, "decay")
    with gr.Accordion("Advanced options", open=False):
        phase = gr.Radio(PHASES, value="input", label="Phase of the output")
        level = gr.Checkbox(value=True, label="Match the output level to the input")
    # Two aligned rows rather than three stacked columns: the upload box is taller than a player,
    # and this keeps the three spectrograms side by side at the same height.
    with gr.Row(equal_height=True):
        inp = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Input", elem_id="input-audio")
        out_t = wav_player(type="filepath", label="Translated", interactive=False, elem_id="translated-audio")
        out_r = wav_player(type="filepath", label="Reconstructed (translated back)", interactive=False,
                           elem_id="reconstructed-audio")
    with gr.Row():
        images = [gr.Image(type="filepath", format="png", label=f"{name} spectrogram", interactive=False,
                           show_label=False, elem_id=f"{name.lower()}-spectrogram")
                  for name in ("Input", "Translated", "Reconstructed")]
    summary = gr.Markdown(elem_id="summary")
    with gr.Row():
        diff = gr.Image(type="filepath", format="png", label="What changed: translated − input", interactive=False,
                        elem_id="difference-spectrogram")
        curves = gr.LinePlot(x="frequency (Hz)", y="level (dB)", color="curve", label="Average spectrum",
                             elem_id="average-spectrum")
    changes = gr.State()

    def translate(audio: str | None, direction: str | None, phase: str = "input", match_level: bool = True,
                  tone: str = "clean", strength: float | None = None, decay: bool = False,
                  progress: gr.Progress = gr.Progress()) -> tuple:
        """Translate a clip; returns translated wav, reconstructed wav, input/translated/reconstructed
        spectrogram PNGs and a one-line summary (tone: "clean" or "driven", into guitar only;
        strength: 1 to 2, where 2 runs the model again on its own output; None: the model's own;
        decay: held notes fade like a struck string's, into piano only)."""
        return app.translate(audio, direction, phase, match_level, tone, strength, progress, decay=decay)

    def check(audio: str | None) -> tuple:
        """At upload: refuse a bad file at once, and clear the outputs of the previous clip."""
        return (None,) * 5 + (app.check(audio), None, None)

    inputs, shown = [inp, direction, phase, level, tone, strength, decay], [out_t, out_r, *images, summary]
    cleared = [*shown, diff, curves]
    clear = (lambda: (None,) * N_OUTPUTS, None, cleared)
    # One concurrency group for every path into the model, so at most CONCURRENCY run at once.
    for event in (button.click(translate, inputs, [*shown, changes], api_name="translate", concurrency_id="model"),):
        event.success(lambda c: c, changes, [diff, curves], queue=False, api_visibility="private")
        event.failure(*clear, queue=False, api_visibility="private")
    for trigger in (inp.upload, inp.stop_recording):
        # queued (an error of an unqueued event shows no message), in its own group: never behind a translation
        trigger(check, inp, cleared, concurrency_id="check", api_visibility="private").failure(
            *clear, queue=False, api_visibility="private")
    examples = gr.Examples(example_rows(list(app.directions.values()), EXAMPLES), [inp, direction], label="Examples",
                           cache_examples=False)
    # Run on click (one click to a result) with the user's advanced options, not the defaults.
    ran = examples.load_input_event.then(translate, inputs, [*shown, changes], api_visibility="undocumented",
                                         concurrency_id="model")
    ran.success(lambda c: c, changes, [diff, curves], queue=False, api_visibility="private")
    ran.failure(*clear, queue=False, api_visibility="private")


def live_tab(app: App, choices: list[tuple[str, str]], every: float = LIVE_EVERY, step: float = LIVE_STEP) -> None:
    gr.Markdown("**A near-live preview, not a guitar pedal.** Play into the microphone and hear the translation "
                "about 0.7 s later (more on a slow connection): the model waits for a quarter of a second of what "
                "follows each moment, and the audio travels to the server and back. Use headphones, or the "
                "speaker feeds the microphone.")
    with gr.Row(equal_height=True):
        direction = gr.Radio(choices, value=choices[0][1], label="Direction", scale=3)
        tone = _tone_radio(app, "live-tone")
    _follow_direction(app, direction, tone)
    decay = _decay_box(app, direction, "live-decay")
    if shutil.which("ffmpeg") is None:  # Gradio encodes a streamed output with it
        gr.Markdown("Live mode needs `ffmpeg` on the server (e.g. `apt-get install ffmpeg`).")
        return
    with gr.Row(equal_height=True):
        mic = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="Microphone", elem_id="live-mic")
        # the whole take as Gradio streams it (HLS): to replay or download; the player below is what is heard
        out = gr.Audio(streaming=True, autoplay=False, interactive=False, label="Translation (the whole take)",
                       elem_id="live-output")
    player = gr.HTML("", html_template=live_player.TEMPLATE, js_on_load=live_player.JS, elem_id="live-player",
                     rate=app.sample_rate)
    status = gr.Markdown(elem_id="live-status")
    live = Live(app, step, LIVE_SECONDS)
    hidden = {"api_visibility": "private", "show_progress": "hidden"}
    mic.start_recording(live.start, None, None, queue=False, **hidden).then(
        live.play, None, out, concurrency_id="live-out", concurrency_limit=LIVE_SESSIONS, **hidden)
    mic.stream(live.chunk, [mic, direction, tone, decay], [status, player], stream_every=every,
               time_limit=LIVE_SECONDS, concurrency_id="live-in", concurrency_limit=LIVE_SESSIONS, **hidden)
    mic.stop_recording(live.stop, None, None, queue=False, **hidden)


def build_demo(weights_root: Path | str = weights.DEFAULT_ROOT, live_every: float = LIVE_EVERY,
               live_step: float = LIVE_STEP) -> gr.Blocks:
    """The Blocks app, not launched: tests use it in-process and main() serves it. live_every: the Live
    tab's stream_every; live_step: the new microphone audio each live model run waits for (seconds)."""
    app = App.load(Path(weights_root))
    choices = [(d.label, d.value) for d in app.directions.values()]
    with gr.Blocks(title="Timbre: piano ↔ guitar", analytics_enabled=False, delete_cache=(3600, 7200)) as demo:
        gr.Markdown("# Timbre: piano ↔ electric guitar\nA CycleGAN changes the instrument of a recording "
                    "and keeps the notes. Upload or record a clip (up to 60 s), pick a direction, press "
                    "**Translate**, or click an example below; or play live in the **Live** tab.")
        scores = scores_markdown(list(app.directions.values()))
        if scores:
            with gr.Accordion("How good is it?", open=False):
                gr.Markdown(scores)
        with gr.Tab("Translate a clip"):
            translate_tab(app, choices)
        with gr.Tab("Live"):
            live_tab(app, choices, live_every, live_step)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    return demo


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=weights.DEFAULT_ROOT, help="weights/ or one model folder")
    ap.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    ap.add_argument("--share", action="store_true", help="also serve through a temporary public gradio.live link")
    ap.add_argument("--live-every", type=float, default=LIVE_EVERY,
                    help=f"the Live tab's stream_every in seconds (default: {LIVE_EVERY})")
    ap.add_argument("--live-step", type=float, default=LIVE_STEP,
                    help=f"seconds of new microphone audio each live model run waits for (default: {LIVE_STEP})")
    args = ap.parse_args(argv)
    if not weights.find_models(args.weights):
        print(f"No trained model found under {args.weights}.\n"
              f"Train and export one first:\n    {EXPORT_HINT}", file=sys.stderr)
        return 1
    # SIGTERM (a container or a test stopping us) closes the server like Ctrl-C, so atexit cleans up.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    demo = build_demo(args.weights, args.live_every, args.live_step)
    demo.launch(server_name=args.host, server_port=args.port, allowed_paths=[str(EXAMPLES)],
                max_file_size="100mb", ssr_mode=False, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
