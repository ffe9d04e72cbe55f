#!/bin/bash
# From the self-blend-only run's weights at step 850, one epoch with DFDC's own fakes back in the
# batches (half the slots self-blend pairs, half dataset crops): can the network learn DFDC's
# face swaps again without losing what self-blends taught it out of distribution?
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec nice -n 5 .venv/bin/deepfakestream train --data /work/shared/data/dfdc_faces --real-data /work/shared/data/real_videos \
  --run-dir runs/d-mixed --out runs/d-mixed/deepfakestream.safetensors \
  --architecture tf_efficientnet_lite0 --init-from models/training-state/lite0-160-sbionly/state/step850.safetensors \
  --input-size 160 --epochs 1 --lr 1e-4 --sbi-ratio 0.5 --sbi-pairs --sbi-landmark-points 68 \
  --lower-face-ratio 0.3 --generated-face-ratio 0.2 \
  --real-data-ratio 0.1 --frames-per-video 24 \
  --square-crop 1.085:0.087 --face-margin 0.0 --save-every 50 --version 3.0.0-d --no-progress "$@"
