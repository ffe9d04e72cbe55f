"""`deepfakestream calibrate`: fit a checkpoint's calibration again on its validation faces, weights kept.

Writes a new checkpoint whose temperature, offset, threshold and inconclusive band are fitted on
the validation split of a crop folder the checkpoint was trained on, alone or with one
self-blend of each of its REAL faces (``--calibration val+self-blends``, the default: for models
that must give honest verdicts on fakes unlike the folder's own).
"""

from __future__ import annotations

import argparse
import sys

from pipeline.errors import PipelineError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from training.config import CALIBRATION_SETS

    parser.add_argument("--model", required=True, metavar="PATH", help="the checkpoint to recalibrate")
    parser.add_argument(
        "--data", required=True, metavar="DIR", help="a crop folder the checkpoint was trained on"
    )
    parser.add_argument("--out", required=True, metavar="PATH", help="the new checkpoint (a new file)")
    parser.add_argument(
        "--calibration",
        choices=CALIBRATION_SETS,
        default="val+self-blends",
        help="what the calibration is fitted on: the validation split, or it plus one self-blend "
        "of each of its REAL faces",
    )
    parser.add_argument("--version", default=None, help="version written into the new checkpoint")
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda[:N]")
    parser.add_argument("--cache-dir", default=None, help="crop cache (default runs/cache)")


def run(args: argparse.Namespace) -> int:
    from training.datasets import DEFAULT_CACHE_DIR
    from training.recalibrate import recalibrate

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        written, fitted = recalibrate(
            args.model,
            args.data,
            args.out,
            calibration=args.calibration,
            version=args.version,
            device=args.device,
            cache_dir=args.cache_dir or DEFAULT_CACHE_DIR,
            say=say,
        )
    except PipelineError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"error [invalid_arguments]: {exc}", file=sys.stderr)
        return 2
    low, high = fitted.band
    print(
        f"checkpoint {written}  threshold {fitted.threshold:.4f}  band [{low:.4f}, {high:.4f})  "
        f"val AUC {fitted.metrics['auc']}  log loss {fitted.metrics['log_loss']:.4f}"
    )
    return 0
