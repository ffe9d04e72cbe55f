#!/bin/bash
# As J (../lite0-160-keepboth/), and held to G's own scores on every sample but DFDC's fakes
# (learning without forgetting, weight 1): does that keep the generalist while DFDC is learnt?
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec nice -n 5 .venv/bin/deepfakestream train --data /work/shared/data/dfdc_faces --real-data /work/shared/data/real_videos \
  --run-dir runs/m-lwf1 --out runs/m-lwf1/deepfakestream.safetensors \
  --architecture tf_efficientnet_lite0 --init-from models/training-state/lite0-160-flat/state/avg-100-600.safetensors \
  --input-size 160 --epochs 1 --max-steps 300 --lr 1e-4 --schedule flat --frozen-stages 4 \
  --sbi-ratio 0.8 --sbi-pairs --sbi-landmark-points 68 --lower-face-ratio 0.3 \
  --real-data-ratio 0.05 --frames-per-video 24 --calibration val+self-blends \
  --square-crop 1.085:0.087 --face-margin 0.0 --save-every 50 --snapshot-every 100 --version 3.0.0-m1 --distill-from models/training-state/lite0-160-flat/state/avg-100-600.safetensors --distill-weight 1 --no-progress "$@"
