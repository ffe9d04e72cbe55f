#!/bin/bash
# Self-blends only from ImageNet weights, as lite0-160-sbionly, but with the encoder's first four
# stages frozen (--frozen-stages 4) and two epochs: does keeping ImageNet's early features keep
# the general stage that run lost as it trained on?
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec nice -n 5 .venv/bin/deepfakestream train --data /work/shared/data/dfdc_faces --real-data /work/shared/data/real_videos \
  --run-dir runs/e-frozen --out runs/e-frozen/deepfakestream.safetensors \
  --architecture tf_efficientnet_lite0 --pretrained imagenet --input-size 160 --frozen-stages 4 \
  --epochs 2 --lr 5e-4 --sbi-only --sbi-ratio 0.9 --sbi-pairs --sbi-landmark-points 68 --lower-face-ratio 0.3 \
  --real-data-ratio 0.05 --frames-per-video 24 \
  --square-crop 1.085:0.087 --face-margin 0.0 --save-every 50 --version 3.0.0-e --no-progress "$@"
