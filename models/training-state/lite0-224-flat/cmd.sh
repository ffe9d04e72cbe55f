#!/bin/bash
# As G (self-blends only, flat learning rate, snapshots every 100 steps), at 224 px: the crops' own
# size, where blending boundaries and up-sampling traces are not yet resampled away.
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec nice -n 5 .venv/bin/deepfakestream train --data /work/shared/data/dfdc_faces --real-data /work/shared/data/real_videos \
  --run-dir runs/h-224 --out runs/h-224/deepfakestream.safetensors \
  --architecture tf_efficientnet_lite0 --pretrained imagenet --input-size 224 \
  --epochs 3 --lr 4e-4 --schedule flat --sbi-only --sbi-ratio 0.9 --sbi-pairs --sbi-landmark-points 68 --lower-face-ratio 0.3 \
  --real-data-ratio 0.05 --frames-per-video 24 \
  --square-crop 1.085:0.087 --face-margin 0.0 --save-every 50 --snapshot-every 100 --version 3.0.0-h --no-progress "$@"
