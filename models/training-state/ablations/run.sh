#!/bin/bash
# Short ablation arms on the ImageNet-initialised Lite0 (same budget each), then the held-out real videos.
cd "$(dirname "$0")/../../.."
D=${DATA_DIR:-/work/shared/data}
common="--data $D/dfdc_faces --real-data $D/real_videos --architecture tf_efficientnet_lite0 --pretrained imagenet --input-size 160 --epochs 1 --lr 5e-4 --max-train-items 4000 --frames-per-video 24 --square-crop 1.085:0.087 --face-margin 0.0 --save-every 1000 --no-progress --version 0.0.1"
arm() {
  name=$1; shift
  dir=runs/ablations/$name
  [ -f $dir/done ] && return
  mkdir -p $dir
  echo "== $name $* $(date +%T)"
  .venv/bin/deepfakestream train $common --run-dir $dir --out $dir/model.safetensors "$@" > $dir/train.log 2>&1 || { echo "train failed $name"; return; }
  .venv/bin/deepfakestream evaluate --data $D/real_videos --model $dir/model.safetensors --split val > $dir/real_val.txt 2>&1
  touch $dir/done
  echo "== $name done $(date +%T)"; tail -1 $dir/log.jsonl 2>/dev/null
}
arm srm_sbi02 --sbi-ratio 0.2
arm rgb_sbi02 --sbi-ratio 0.2 --no-srm
arm srm_sbi0 --sbi-ratio 0
arm srm_sbi05 --sbi-ratio 0.5
arm srm_sbionly05 --sbi-ratio 0.5 --sbi-only
arm srm_sbi02_rd01 --sbi-ratio 0.2 --real-data-ratio 0.1
echo ALL DONE $(date +%T)
