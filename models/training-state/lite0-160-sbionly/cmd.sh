#!/bin/bash
# Self-blends only (no DFDC fakes), from ImageNet weights: paired, degraded alike, 68-point hulls,
# a third of them lower-face blends; the real-video faces also fed as REAL.
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec nice -n 5 .venv/bin/deepfakestream train --data /work/shared/data/dfdc_faces --real-data /work/shared/data/real_videos \
  --run-dir runs/b-sbionly --out runs/b-sbionly/deepfakestream.safetensors \
  --architecture tf_efficientnet_lite0 --pretrained imagenet --input-size 160 \
  --epochs 6 --lr 5e-4 --sbi-only --sbi-ratio 0.9 --sbi-pairs --sbi-landmark-points 68 --lower-face-ratio 0.3 \
  --real-data-ratio 0.05 --frames-per-video 24 \
  --square-crop 1.085:0.087 --face-margin 0.0 --save-every 50 --version 3.0.0-b --no-progress "$@"
