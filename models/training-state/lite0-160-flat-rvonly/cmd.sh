#!/bin/bash
# As G (lite0-160-flat), but every self-blend source drawn from the frames of the real
# talking-head videos (48 a video) instead of about 6 %: closer to the footage the cross-family fakes start from.
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec nice -n 5 .venv/bin/deepfakestream train --data /work/shared/data/dfdc_faces --real-data /work/shared/data/real_videos \
  --run-dir runs/l-rvonly --out runs/l-rvonly/deepfakestream.safetensors \
  --architecture tf_efficientnet_lite0 --pretrained imagenet --input-size 160 \
  --epochs 2 --lr 4e-4 --schedule flat --sbi-only --sbi-ratio 0.9 --sbi-pairs --sbi-landmark-points 68 --lower-face-ratio 0.3 \
  --real-data-ratio 0.05 --real-source-share 1.0 --frames-per-video 48 \
  --square-crop 1.085:0.087 --face-margin 0.0 --save-every 50 --snapshot-every 100 --version 3.0.0-l --no-progress "$@"
