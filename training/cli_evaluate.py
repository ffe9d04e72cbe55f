"""`deepfakestream evaluate`: metrics of a checkpoint on labelled crops or videos.

``--compare A.csv B.csv`` instead compares two evaluations' ``predictions.csv`` on the items
both scored; it needs no model and no data folder.
"""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.errors import PipelineError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="crop folder or DFDC-layout video folder (required unless --compare)",
    )
    parser.add_argument(
        "--model", default=None, metavar="PATH", help="safetensors checkpoint (default: the shipped model)"
    )
    parser.add_argument(
        "--split",
        choices=("all", "train", "val"),
        default="all",
        help="identity-group split to evaluate (val: the groups training held out)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help="override the split's fraction (default: the checkpoint's)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="override the split's seed (default: the checkpoint's)"
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="write predictions.csv, metrics.json, roc.png, reliability.png",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument(
        "--tta-flip", action="store_true", help="score each face and its mirror image, logits averaged"
    )
    parser.add_argument(
        "--aggregation",
        choices=("mean", "confident", "track_top"),
        default="mean",
        help="video score from face scores (videos only; every method is also tabulated)",
    )
    parser.add_argument("--cache-dir", default=None, help="crop cache (default runs/cache)")
    parser.add_argument(
        "--pairs",
        default=None,
        metavar="CSV",
        help="matched pairs (columns real,fake: the same footage before and after manipulation); "
        "their score differences are reported",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        default=None,
        metavar=("A.csv", "B.csv"),
        help="compare two predictions.csv files written by --out on the items both scored: "
        "AUC of each, overall and per family, and the paired bootstrap difference B − A "
        "(needs no --data or --model)",
    )


def _compare(args: argparse.Namespace) -> int:
    from training.compare import compare_predictions, format_comparison

    clashing = [f"--{name}" for name in ("data", "model", "out", "pairs") if getattr(args, name)]
    if clashing:
        print(
            f"error [invalid_arguments]: --compare reads two predictions files and takes no "
            f"{', '.join(clashing)}",
            file=sys.stderr,
        )
        return 2
    try:
        result = compare_predictions(*args.compare)
    except PipelineError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"error [invalid_arguments]: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1) if args.json else format_comparison(result))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.compare:
        return _compare(args)
    if not args.data:
        print(
            "error [invalid_arguments]: --data DIR is required (unless --compare A.csv B.csv)",
            file=sys.stderr,
        )
        return 2
    from pipeline.model import DEFAULT_MODEL_PATH
    from training.datasets import DEFAULT_CACHE_DIR
    from training.evaluate import evaluate, read_pairs
    from training.evaluate_report import format_report, write_outputs

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        pairs = read_pairs(args.pairs) if args.pairs else None
        evaluation = evaluate(
            args.data,
            args.model or DEFAULT_MODEL_PATH,
            split=args.split,
            val_fraction=args.val_fraction,
            seed=args.seed,
            device=args.device,
            cache_dir=args.cache_dir or str(DEFAULT_CACHE_DIR),
            say=say,
            tta_flip=args.tta_flip,
            aggregation=args.aggregation,
            pairs=pairs,
        )
        written = write_outputs(evaluation, args.out) if args.out else {}
    except PipelineError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except (ValueError, OSError) as exc:
        print(f"error [invalid_arguments]: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(evaluation.to_dict(), indent=1))
    else:
        print(format_report(evaluation))
    for name, path in written.items():
        say(f"wrote {name}: {path}")
    if "roc" not in written and args.out:
        say("no ROC curve: AUC is undefined when only one class is present")
    return 0
