"""The settings of a training run, shared by the run, its data, its resumable state and its export."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.datasets import DEFAULT_CACHE_DIR
from training.errors import TrainingError
from training.framing import parse_square
from training.schedule import SCHEDULES

__all__ = ["CALIBRATION_SETS", "DEFAULT_CAVEAT", "TrainConfig"]

# What the export calibrates on: the validation split, or the validation split plus one
# self-blend of each of its REAL faces (for models whose scores on the dataset's own fakes are
# too weak to place a threshold and an inconclusive band on).
CALIBRATION_SETS = ("val", "val+self-blends")


DEFAULT_CAVEAT = (
    "Trained on DFDC face swaps and self-blended pseudo-fakes; other manipulation families "
    "(lip-sync, full-face synthesis, heavy compression) are often missed."
)


@dataclass
class TrainConfig:
    """What a training run does; ``validate`` refuses settings that cannot work together."""

    data: list[str]  # crop or video folders with labels (FAKE and REAL)
    out: str = "models/deepfakestream.safetensors"
    run_dir: str = "runs/train"
    real_data: list[str] = field(default_factory=list)  # extra REAL-only folders: self-blending sources
    architecture: str = "tf_efficientnet_lite0"
    # "imagenet": the encoder starts from Google's ImageNet weights (``training.pretrained``);
    # "none": random initialisation. Ignored with ``init_from`` and on resume.
    pretrained: str = "imagenet"
    input_size: int = 160
    use_srm: bool = True
    # None: measure it on the first crop folder (see ``measure_margin``) so that inference crops
    # are framed like the training crops.
    face_margin: float | None = 0.3
    # None: box framing with ``face_margin``. "auto": square framing measured on the first crop
    # folder; "SCALE:SHIFT" (e.g. "1.083:0.088"): square framing given (``crop_face``).
    square_crop: str | None = None
    epochs: int = 6
    batch_size: int = 32
    lr: float = 2e-3
    # "one-cycle" (warm-up, cosine down) or "flat" (warm-up, then ``lr`` to the end): see
    # ``training.schedule``.
    schedule: str = "one-cycle"
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    label_smoothing: float = 0.05
    sbi_ratio: float = 0.2  # fraction of training samples replaced by self-blended pseudo-fakes
    # fraction of training samples replaced by a REAL-only folder's face, labelled REAL
    real_data_ratio: float = 0.0
    # Blend through a hull drawn from each real face's MTCNN landmarks (found once, cached)
    # instead of an ellipse placed from the crop geometry.
    sbi_landmarks: bool = True
    # Train on self-blends as the only fakes: the dataset's FAKE crops are left out of training
    # (validation keeps them), as in the paper.
    sbi_only: bool = False
    # 5: the hull from MTCNN's five points; 68: from dlib's 68 points placed on them (needs the
    # ``train`` extra's dlib-bin and face-recognition-models), which also allows lower-face blends.
    sbi_landmark_points: int = 5
    # Self-blend slots come as pairs: a real face and its own self-blend in the same batch, both
    # degraded the same way afterwards (resampling, compression, the augmentation chain), so the
    # only difference the network can learn is the blend itself.
    sbi_pairs: bool = False
    # Share of self-blends that blend only the mouth and jaw from a low-resolution rendering
    # (the trace of lip-sync tools); needs 68 landmarks.
    lower_face_ratio: float = 0.0
    # Share of self-blends that repaint the face through simulated generator up-sampling (the
    # traces of talking-head models, which leave no blending boundary).
    generated_face_ratio: float = 0.0
    # Share of self-blend sources drawn from the --real-data frames (None: every real face alike).
    real_source_share: float | None = None
    # Learning without forgetting: a checkpoint whose scores the network is held to on every
    # sample except the dataset's own FAKE crops (its real faces and the self-blends).
    distill_from: str | None = None
    distill_weight: float = 1.0
    # The encoder's first stages kept as they start (ImageNet's or the init checkpoint's weights,
    # batch-norm statistics included): fewer weights to bend towards the self-blends' own look.
    # The stem stays trainable, since the SRM channels enter there.
    frozen_stages: int = 0
    augment_strength: float = 1.0
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    max_train_items: int | None = None  # a seeded subset, for short ablation runs
    max_steps: int | None = None  # stop after this many optimiser steps (tests, smoke runs)
    save_every: int = 200
    # Every this many steps the weights are also kept as ``snapshots/stepNNNNN.safetensors`` in the
    # run directory, for judging them one by one and averaging them (0: none).
    snapshot_every: int = 0
    cache_dir: str | None = str(DEFAULT_CACHE_DIR)
    frames_per_video: int = 8
    version: str = "1.0.0"
    progress: bool = True
    # The one-line warning shown with every verdict this model gives (stored in the checkpoint).
    caveat: str = DEFAULT_CAVEAT
    # Start from this checkpoint's weights (same architecture and SRM setting) with a
    # fresh optimiser and schedule: fine-tuning, or continuing a run whose state is gone.
    init_from: str | None = None
    # What temperature, offset, threshold and inconclusive band are fitted on (``CALIBRATION_SETS``).
    # It only affects the export, so it is not part of the resume key.
    calibration: str = "val"

    def validate(self) -> None:
        if not self.data:
            raise TrainingError("at least one --data folder is needed", code="invalid_arguments")
        if not 0.0 <= self.sbi_ratio < 1.0:
            raise TrainingError("--sbi-ratio must be in [0, 1)", code="invalid_arguments")
        if self.epochs < 1 or self.batch_size < 2:
            raise TrainingError("--epochs must be ≥ 1 and --batch-size ≥ 2", code="invalid_arguments")
        if not 32 <= self.input_size <= 1024:
            raise TrainingError("--input-size must be in 32–1024", code="invalid_arguments")
        if self.square_crop not in (None, "auto"):
            parse_square(self.square_crop)
        if self.pretrained not in ("imagenet", "none"):
            raise TrainingError("--pretrained must be imagenet or none", code="invalid_arguments")
        if not 0.0 <= self.real_data_ratio < 1.0 or self.sbi_ratio + self.real_data_ratio >= 1.0:
            raise TrainingError(
                "--real-data-ratio must be in [0, 1) and leave room for dataset crops beside --sbi-ratio",
                code="invalid_arguments",
            )
        if self.real_data_ratio > 0 and not self.real_data:
            raise TrainingError("--real-data-ratio needs a --real-data folder", code="invalid_arguments")
        if self.sbi_only and self.sbi_ratio <= 0:
            raise TrainingError("--sbi-only needs a positive --sbi-ratio", code="invalid_arguments")
        if self.sbi_landmark_points not in (5, 68):
            raise TrainingError("--sbi-landmark-points must be 5 or 68", code="invalid_arguments")
        if not 0.0 <= self.lower_face_ratio <= 1.0:
            raise TrainingError("--lower-face-ratio must be in [0, 1]", code="invalid_arguments")
        if self.frozen_stages < 0:
            raise TrainingError("--frozen-stages must be 0 or more", code="invalid_arguments")
        if self.schedule not in SCHEDULES:
            raise TrainingError(f"--schedule must be one of {', '.join(SCHEDULES)}", code="invalid_arguments")
        if self.snapshot_every < 0:
            raise TrainingError("--snapshot-every must be 0 or more", code="invalid_arguments")
        if not 0.0 <= self.generated_face_ratio <= 1.0:
            raise TrainingError("--generated-face-ratio must be in [0, 1]", code="invalid_arguments")
        if self.lower_face_ratio + self.generated_face_ratio > 1.0:
            raise TrainingError(
                "--lower-face-ratio and --generated-face-ratio share the self-blends: "
                "their sum must be at most 1",
                code="invalid_arguments",
            )
        if self.lower_face_ratio > 0 and (self.sbi_landmark_points != 68 or not self.sbi_landmarks):
            raise TrainingError(
                "--lower-face-ratio needs --sbi-landmark-points 68 (the mouth and jaw outline)",
                code="invalid_arguments",
            )
        if self.real_source_share is not None:
            if not 0.0 <= self.real_source_share <= 1.0:
                raise TrainingError("--real-source-share must be in [0, 1]", code="invalid_arguments")
            if not self.real_data:
                raise TrainingError(
                    "--real-source-share needs a --real-data folder", code="invalid_arguments"
                )
        if self.distill_from is not None and not self.sbi_pairs:
            raise TrainingError("--distill-from needs --sbi-pairs", code="invalid_arguments")
        if not 0.0 < self.distill_weight <= 100.0:
            raise TrainingError("--distill-weight must be in (0, 100]", code="invalid_arguments")
        if self.sbi_pairs and self.sbi_ratio <= 0:
            raise TrainingError("--sbi-pairs needs a positive --sbi-ratio", code="invalid_arguments")
        if self.calibration not in CALIBRATION_SETS:
            raise TrainingError(
                f"--calibration must be one of {', '.join(CALIBRATION_SETS)}, got {self.calibration!r}",
                code="invalid_arguments",
            )
