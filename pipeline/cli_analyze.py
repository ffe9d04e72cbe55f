"""`deepfakestream analyze VIDEO`: the whole pipeline on one local file, no services needed.

Prints a short summary on stdout; on a terminal, what it is doing and a progress bar (in sampled
frames) on stderr; optionally the full result as JSON and a self-contained HTML report. Every
failure the pipeline anticipates ends in one line on stderr and the exit code of its error type
(see README.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from core.media import MAX_SAMPLE_FPS, MIN_SAMPLE_FPS
from pipeline.errors import ModelError, PipelineError
from pipeline.media_source import source_kind
from pipeline.report import REPORT_FACES
from pipeline.types import AnalysisConfig, VideoResult

if TYPE_CHECKING:
    from pipeline.analyzer import Analyzer

__all__ = ["EXIT_OUTPUT_FAILED", "EXIT_USAGE", "add_arguments", "run"]

EXIT_USAGE = 2
EXIT_OUTPUT_FAILED = 12  # the analysis worked but --json / --report could not be written
EXIT_INTERNAL = 10
# What the analysis is doing, on a terminal's stderr, before the progress bar can move.
_STAGE_MESSAGES = {
    "probe": "reading the video…",
    "load": "loading the model (a few seconds on the first run)…",
    "analyze": "analysing the sampled frames…",
}


def _probe_message(path: str) -> str:
    """What reading the input is called, from the source that will read it (a one-frame video,
    analysed as an image, is still read as a video)."""
    try:
        kind = source_kind(path)
    except PipelineError:
        return "reading the file…"  # the analysis reports what is wrong with it
    return f"reading the {kind.noun}…"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = AnalysisConfig()
    parser.add_argument("video", help="the video or image (JPEG, PNG, WebP, GIF) file to analyse")
    parser.add_argument("--json", metavar="PATH", help="write the full result as JSON ('-' for stdout)")
    parser.add_argument("--report", metavar="PATH.html", help="write a self-contained HTML report")
    parser.add_argument("--sample-fps", type=float, default=None,
                        help=f"frames sampled per second, {MIN_SAMPLE_FPS:g} to {MAX_SAMPLE_FPS:g} "
                        f"(default {defaults.sample_fps:g})")
    parser.add_argument("--segment-seconds", type=float, default=None,
                        help=f"length of a segment (default {defaults.segment_seconds:g})")
    parser.add_argument("--max-frames", type=int, default=None,
                        help=f"most frames sampled per segment (default {defaults.max_frames})")
    parser.add_argument("--max-faces", type=int, default=None,
                        help="faces analysed per frame, the largest first "
                        f"(default {defaults.max_faces_per_frame})")
    parser.add_argument("--aggregation", choices=("mean", "confident"), default=None,
                        help="how frame scores make segment and video scores (default mean)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where the networks run (default auto: CUDA when available)")
    parser.add_argument("--model", metavar="PATH", default=None,
                        help="safetensors checkpoint (default models/deepfakestream.safetensors)")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log pipeline stages to stderr")


def _config_from(args: argparse.Namespace) -> AnalysisConfig:
    if args.sample_fps is not None and not MIN_SAMPLE_FPS <= args.sample_fps <= MAX_SAMPLE_FPS:
        raise ValueError(
            f"--sample-fps must be between {MIN_SAMPLE_FPS:g} and {MAX_SAMPLE_FPS:g} frames a second, "
            f"got {args.sample_fps:g}"
        )
    if args.segment_seconds is not None and not 1 <= args.segment_seconds <= 600:
        raise ValueError("--segment-seconds must be between 1 and 600")
    if args.max_frames is not None and not 1 <= args.max_frames <= 1000:
        raise ValueError("--max-frames must be between 1 and 1000")
    if args.max_faces is not None and not 1 <= args.max_faces <= 256:
        raise ValueError("--max-faces must be between 1 and 256")
    return AnalysisConfig().replace(
        sample_fps=args.sample_fps,
        segment_seconds=args.segment_seconds,
        max_frames=args.max_frames,
        max_faces_per_frame=args.max_faces,
        aggregation=args.aggregation,
        # The report shows the explained faces (crop and heatmap of the same crop), like the page.
        explain_top_k=REPORT_FACES if args.report else None,
    )


def _model_path(args: argparse.Namespace) -> Path:
    from pipeline.model import DEFAULT_MODEL_PATH

    if args.model is not None:
        return Path(args.model)
    if not DEFAULT_MODEL_PATH.exists():
        raise ModelError(
            f"no trained model at {_display_path(DEFAULT_MODEL_PATH)}; until one ships, train one "
            "(deepfakestream train) or pass --model PATH; an untrained network's verdict would mean nothing",
            code="model_not_found",
        )
    return DEFAULT_MODEL_PATH


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _score_line(result: VideoResult) -> str:
    if result.score is None:
        return "no score"
    text = f"P(fake) {result.score:.3f}, threshold {result.threshold:.3f}"
    if result.inconclusive_band is not None:
        low, high = result.inconclusive_band
        text += f", inconclusive {low:.3f}–{high:.3f}"
    return text


def _summary(result: VideoResult, video: str, load_s: float) -> str:
    faces = sum(len(f.faces) for f in result.frames)
    with_faces = sum(1 for f in result.frames if f.faces)
    info = result.video
    timings = result.timings
    lines = []
    if not result.model.get("trained", False):
        lines.append("UNTRAINED MODEL: this checkpoint was never trained; the verdict below is the output "
                     "of random weights and says nothing about the video.")
    lines += [
        f"{Path(video).name}: {result.verdict_label}  ({_score_line(result)})",
        f"  why     {result.explanation}",
        f"  faces   {faces} in {with_faces} of {len(result.frames)} sampled frames, "
        f"{len(result.tracks)} track(s), {len(result.segments)} segment(s)",
        f"  image   {info.width}×{info.height}, {info.codec}" if info.media_type == "image" else
        f"  video   {info.duration_s:.2f} s, {info.width}×{info.height}, {info.fps:.2f} fps, {info.codec}",
        # The stages overlap (decode, detection and classification run side by side), so their
        # busy times need not add up to the total.
        f"  time    {timings.get('total_s', 0.0):.2f} s"
        + (f", real-time factor {result.rtf:.3f}" if result.rtf is not None else "")
        + " (busy: decode wait "
        f"{timings.get('decode_s', 0.0):.2f}, detect {timings.get('detect_s', 0.0):.2f}, "
        f"classify {timings.get('classify_s', 0.0):.2f})",
        f"  model   {result.model.get('name')} {result.model.get('version')}, loaded in {load_s:.2f} s",
    ]
    if result.caveat:
        lines.append(f"  caveat  {result.caveat}")
    return "\n".join(lines)


def _write_json(path: str, document: dict[str, Any], stdout: TextIO) -> None:
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    if path == "-":
        stdout.write(text)
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)


def _analyse(args: argparse.Namespace, config: AnalysisConfig) -> tuple[VideoResult, float]:
    """Analyse ``args.video``; also returns the seconds spent loading the networks,
    which the result's times leave out (a worker loads them once for many videos)."""
    import pipeline

    loaded: dict[str, Any] = {}

    def load(probed: AnalysisConfig) -> Analyzer:
        loading = time.perf_counter()
        analyzer = pipeline.Analyzer(model_path=_model_path(args), device=args.device, config=probed)
        loaded.update(analyzer=analyzer, load_s=time.perf_counter() - loading)
        return analyzer

    from tqdm import tqdm

    # For a person at a terminal only: piped stderr keeps its promise of one line per failure.
    show = not args.no_progress and sys.stderr.isatty()
    bars: list[tqdm[Any]] = []

    messages = {**_STAGE_MESSAGES, "probe": _probe_message(args.video)} if show else {}

    def stage(name: str) -> None:
        if name in messages:
            print(messages[name], file=sys.stderr, flush=True)

    def frames(done: int, total: int) -> None:
        # Counted in sampled frames, so a one-segment clip moves too.
        if not bars:
            bars.append(tqdm(total=total, unit="frame", desc="analysing", disable=not show,
                             file=sys.stderr, leave=False))
        bars[0].n = done
        bars[0].refresh()

    try:
        result = pipeline.analyze(args.video, config=config, load=load, on_frames=frames, on_stage=stage)
    finally:
        for bar in bars:
            bar.close()
    return result, loaded["load_s"]


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        config = _config_from(args)
    except ValueError as exc:
        print(f"error [usage]: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result, load_s = _analyse(args, config)
    except PipelineError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # the promise is one line, never a traceback; -v shows it
        if args.verbose:
            traceback.print_exc()
        print(f"error [internal]: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL

    if not result.model.get("trained", False):
        print("warning: UNTRAINED MODEL: scores come from random weights", file=sys.stderr)
    json_to_stdout = args.json == "-"
    if not json_to_stdout:
        print(_summary(result, args.video, load_s))
    try:
        if args.json:
            _write_json(args.json, result.to_dict(), sys.stdout)
        if args.report:
            from pipeline.report import write_report

            write_report(args.report, result, video_path=args.video)
    except (OSError, ValueError) as exc:
        print(f"error [output_failed]: could not write output: {exc}", file=sys.stderr)
        return EXIT_OUTPUT_FAILED
    return 0
