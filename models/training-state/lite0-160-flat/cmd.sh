#!/bin/bash
# As B (self-blends only, from ImageNet), but the learning rate held flat after the warm-up, and a
# snapshot of the weights every 100 steps: for judging each snapshot and averaging them.
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec nice -n 5 .venv/bin/deepfakestream train --data /work/shared/data/dfdc_faces --real-data /work/shared/data/real_videos \
  --run-dir runs/g-flat --out runs/g-flat/deepfakestream.safetensors \
  --architecture tf_efficientnet_lite0 --pretrained imagenet --input-size 160 \
  --epochs 4 --lr 4e-4 --schedule flat --sbi-only --sbi-ratio 0.9 --sbi-pairs --sbi-landmark-points 68 --lower-face-ratio 0.3 \
  --real-data-ratio 0.05 --frames-per-video 24 \
  --square-crop 1.085:0.087 --face-margin 0.0 --save-every 50 --snapshot-every 100 --version 3.0.0-g --no-progress "$@"
