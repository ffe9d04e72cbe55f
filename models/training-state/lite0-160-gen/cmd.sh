#!/bin/bash
# From the self-blend-only run's weights at step 850 (its best cross-family point so far; later
# epochs lost it), one epoch in which the self-blends also include faces repainted through
# simulated generator up-sampling (--generated-face-ratio): the trace of talking-head models.
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec nice -n 5 .venv/bin/deepfakestream train --data /work/shared/data/dfdc_faces --real-data /work/shared/data/real_videos \
  --run-dir runs/c-gen --out runs/c-gen/deepfakestream.safetensors \
  --architecture tf_efficientnet_lite0 --init-from models/training-state/lite0-160-sbionly/state/step850.safetensors \
  --input-size 160 --epochs 1 --lr 1e-4 --sbi-only --sbi-ratio 0.9 --sbi-pairs --sbi-landmark-points 68 \
  --lower-face-ratio 0.3 --generated-face-ratio 0.3 \
  --real-data-ratio 0.05 --frames-per-video 24 \
  --square-crop 1.085:0.087 --face-margin 0.0 --save-every 50 --version 3.0.0-c --no-progress "$@"
