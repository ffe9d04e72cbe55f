#!/bin/bash
# As G (self-blends only, flat learning rate, snapshots every 100 steps), with EfficientNet-Lite2
# instead of Lite0 (more capacity, better ImageNet features); three epochs planned, the candidate
# needs only the first two.
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec nice -n 5 .venv/bin/deepfakestream train --data /work/shared/data/dfdc_faces --real-data /work/shared/data/real_videos \
  --run-dir runs/i-lite2 --out runs/i-lite2/deepfakestream.safetensors \
  --architecture tf_efficientnet_lite2 --pretrained imagenet --input-size 160 \
  --epochs 3 --lr 4e-4 --schedule flat --sbi-only --sbi-ratio 0.9 --sbi-pairs --sbi-landmark-points 68 --lower-face-ratio 0.3 \
  --real-data-ratio 0.05 --frames-per-video 24 \
  --square-crop 1.085:0.087 --face-margin 0.0 --save-every 50 --snapshot-every 100 --version 3.0.0-i --no-progress "$@"
