#!/usr/bin/env bash
# GPU check of the reference PixelPlayer (issue 26): the `gpu` profile (the paper's sizes) trained for a
# bounded number of steps on the default data, then evaluated on the default test items. Prints the
# training speed (steps/s, clips/s), the GPU's peak memory and the scores. Meant to finish in under 8
# minutes on one H100 with the defaults: the default data (MUSIC-Synth, about 1 min on 16 cores), STEPS
# training steps, and the evaluation of 100 test items and 9 duet items.
#
#   bash bench/gpu_check.sh                 # STEPS=300 OUT=/tmp/gpu_check ROOT=$OUT/data
#   STEPS=1000 bash bench/gpu_check.sh      # longer, if the first run leaves time
#
# It needs a CUDA device (it stops otherwise) and the repository installed (pip install -e .).
# Record its last lines in docs/baselines.md with the card's name.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-300}
OUT=${OUT:-/tmp/gpu_check}
ROOT=${ROOT:-$OUT/data}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$OUT"

python - <<'EOF'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible to torch; this check runs only where one is lent")
print(f"gpu_check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
EOF

# the repository's params with every parallel knob at this machine's core count
python - "$OUT/params.yaml" "$JOBS" <<'EOF'
import sys

import yaml

params = yaml.safe_load(open("params.yaml"))
jobs = int(sys.argv[2])
params["synth"]["jobs"] = params["process"]["jobs"] = jobs
params["pixelplayer"]["gpu"]["workers"] = min(jobs, params["pixelplayer"]["gpu"]["workers"])
yaml.safe_dump(params, open(sys.argv[1], "w"), sort_keys=False)
EOF
PARAMS="$OUT/params.yaml"

start=$(date +%s)
if [ ! -f "$ROOT/mixtures/benchmark.json" ]; then
    musicbench synth --params "$PARAMS" --root "$ROOT" --jobs "$JOBS"
    musicbench process --params "$PARAMS" --root "$ROOT"
    musicbench splits build --params "$PARAMS" --root "$ROOT"
    musicbench mixtures --params "$PARAMS" --root "$ROOT"
fi
data_done=$(date +%s)

# the GPU's memory in use, every half second, while training and evaluating
nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader,nounits -lms 500 > "$OUT/memory.csv" 2>/dev/null &
smi=$!
trap 'kill $smi 2>/dev/null || true' EXIT

musicbench train-pixelplayer --params "$PARAMS" --root "$ROOT" --out "$OUT/model" --profile gpu --device cuda \
    --max-steps "$STEPS" --no-resume --quiet
trained=$(date +%s)
musicbench evaluate baselines/pixelplayer.py --params "$PARAMS" --root "$ROOT" --out "$OUT/run" --device cuda --jobs "$JOBS" \
    --option checkpoint="$OUT/model/checkpoint.pt" --overwrite > "$OUT/evaluate.log"
done_at=$(date +%s)
kill $smi 2>/dev/null || true

python - "$OUT" "$((data_done - start))" "$((trained - data_done))" "$((done_at - trained))" <<'EOF'
import csv
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
train = json.loads((out / "model" / "summary.json").read_text()) if (out / "model" / "summary.json").is_file() else {}
if not train:  # stopped early (max steps): the checkpoint's trainer state says how far it got
    import torch
    state = torch.load(out / "model" / "checkpoint.pt", map_location="cpu", weights_only=False)
    train = {"steps": state["step"], "global_batch": state["global_batch"]}
summary = json.loads((out / "run" / "summary.json").read_text())
used = [int(row[0]) for row in csv.reader(open(out / "memory.csv")) if row and row[0].strip().isdigit()]
total = next((int(row[1]) for row in csv.reader(open(out / "memory.csv")) if len(row) > 1 and row[1].strip().isdigit()), None)
data_s, train_s, eval_s = map(int, sys.argv[2:5])
nsdr, duets, loc = summary["metrics"]["nsdr"], (summary.get("duets") or {}).get("metrics", {}).get("nsdr"), summary["localization"]
steps = train.get("steps") or 0
print(f"data {data_s} s; training {steps} steps in {train_s} s (wall, with start-up): "
      f"{steps / max(train_s, 1):.2f} steps/s, {steps * (train.get('global_batch') or 0) / max(train_s, 1):.1f} clips/s"
      + (f"; trainer's own figure {train['steps_per_second']} steps/s" if train.get("steps_per_second") else ""))
print(f"GPU memory peak {max(used) if used else 'n/a'} MiB of {total or 'n/a'} MiB (nvidia-smi, every 0.5 s)")
print(f"evaluation {eval_s} s: NSDR {nsdr['mean']:.2f} dB [{nsdr['ci95'][0]:.2f}, {nsdr['ci95'][1]:.2f}], "
      f"cIoU {loc['ciou_mean']:.3f}, pointing game {loc['pointing_game']:.3f}"
      + (f", duet NSDR {duets['mean']:.2f} dB" if duets and duets.get("mean") is not None else ""))
EOF
