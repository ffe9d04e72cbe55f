#!/bin/bash
cd "$(dirname "$0")/../../.."
# deepfakestream-2.2.0.safetensors: 2.2.0's shipped file, models/deepfakestream.safetensors at commit 79a96f8.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec nice -n -5 .venv/bin/deepfakestream train --data /work/shared/data/dfdc_faces --real-data /work/shared/data/real_videos \
  --run-dir runs/a-pairs --out runs/a-pairs/deepfakestream-2.3.0.safetensors \
  --architecture tf_efficientnet_lite0 --init-from deepfakestream-2.2.0.safetensors --input-size 160 \
  --epochs 2 --lr 2e-4 --sbi-ratio 0.5 --sbi-pairs --sbi-landmark-points 68 --lower-face-ratio 0.3 \
  --real-data-ratio 0.1 --frames-per-video 24 \
  --square-crop 1.085:0.087 --face-margin 0.0 --save-every 100 --version 2.3.0 --no-progress "$@"
