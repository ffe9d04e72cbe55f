#!/usr/bin/env bash
# The rows every candidate model is judged on, as `evaluate` prints them:
#   1. faces of DFDC identities held out of training (crops, --split val),
#   2. the 11 held-out real talking-head videos, end to end (--split val),
#   3. the cross-family development set, end to end, per family and over its matched pairs.
# Usage: models/training-state/candidates.sh CHECKPOINT OUT_DIR [DATA_ROOT]
set -euo pipefail
cd "$(dirname "$0")/../.."
checkpoint="$1"
out="$2"
data="${3:-/work/shared/data}"
mkdir -p "$out"
run() {
    local name="$1"
    shift
    .venv/bin/deepfakestream evaluate --model "$checkpoint" --device cpu --out "$out/$name" "$@" \
        > "$out/$name.txt" 2> "$out/$name.log"
    echo "== $name" && cat "$out/$name.txt"
}
run dfdc-val --data "$data/dfdc_faces" --split val
run real-videos-val --data "$data/real_videos" --split val
run crossfamily --data "$data/crossfamily" --pairs models/eval/crossfamily-pairs.csv
