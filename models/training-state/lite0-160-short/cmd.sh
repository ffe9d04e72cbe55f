#!/bin/bash
# As lite0-160-sbionly (self-blend pairs only, from ImageNet weights), but a one-cycle schedule of
# two epochs instead of six: is the early, general stage a matter of few steps, or of a learning
# rate still high when it is measured?
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec nice -n 5 .venv/bin/deepfakestream train --data /work/shared/data/dfdc_faces --real-data /work/shared/data/real_videos \
  --run-dir runs/f-short --out runs/f-short/deepfakestream.safetensors \
  --architecture tf_efficientnet_lite0 --pretrained imagenet --input-size 160 \
  --epochs 2 --lr 5e-4 --sbi-only --sbi-ratio 0.9 --sbi-pairs --sbi-landmark-points 68 --lower-face-ratio 0.3 \
  --real-data-ratio 0.05 --frames-per-video 24 \
  --square-crop 1.085:0.087 --face-margin 0.0 --save-every 50 --version 3.0.0-f --no-progress "$@"
