#!/usr/bin/env bash
# Pictures for the README, made from a real small sweep and a run logged to MLflow:
#   docs/tensorboard_scalars.png  TensorBoard's first screen (Time Series) of the sweep
#   docs/hparams.png              TensorBoard's HPARAMS table of a 4-job sweep (headless Chromium)
#   docs/confusion_matrix.png     the test confusion-matrix image of one job, from its event file
#   docs/mlflow.png               `mlflow ui` showing the MLflow run
# Needs Chromium (not needed by `make test`): on Debian/Ubuntu `apt-get install chromium`;
# elsewhere point CHROMIUM at a Chrome/Chromium binary. Run after `make install`:
#   bash scripts/screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
[ -n "$CHROMIUM" ] || { echo "no Chromium found: apt-get install chromium, or set CHROMIUM=..." >&2; exit 2; }
SWEEP=outputs/screenshots/sweep
rm -rf outputs/screenshots
"$PY" -m logitlab.train -m optimizer.lr=1e-3,1e-2 loss=cross_entropy,nll trainer.max_epochs=5 \
  trainer.enable_progress_bar=false "hydra.sweep.dir=$SWEEP" > outputs/screenshots.log 2>&1
PORT=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$PY" -m tensorboard.main --logdir "$SWEEP" --host 127.0.0.1 --port "$PORT" > /dev/null 2>&1 &
TB=$!
trap 'kill $TB 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$PORT/data/runs" > /dev/null && break; sleep 1; done
mkdir -p docs
shot() {  # shot <file> <url>
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d)" --window-size=1500,900 --virtual-time-budget=20000 \
    --screenshot="$PWD/$1" "$2" 2> /dev/null
}
shot docs/hparams.png "http://127.0.0.1:$PORT/#hparams"
shot docs/tensorboard_scalars.png "http://127.0.0.1:$PORT/#timeseries"
"$PY" - "$SWEEP/0/tensorboard" <<'PY'
import sys
from pathlib import Path
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
for events in sorted(Path(sys.argv[1]).rglob("events.out.tfevents.*")):
    acc = EventAccumulator(str(events), size_guidance={"images": 0})
    acc.Reload()
    if "test/confusion_matrix" in acc.Tags()["images"]:
        image = acc.Images("test/confusion_matrix")[-1].encoded_image_string
        Path("docs/confusion_matrix.png").write_bytes(image)
PY
ML=outputs/screenshots/mlflow
"$PY" -m logitlab.train logger=[tensorboard,mlflow] trainer.max_epochs=5 \
  trainer.enable_progress_bar=false "paths.output_root=$ML" > outputs/screenshots_mlflow.log 2>&1
MLPORT=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
MLFLOW_ALLOW_FILE_STORE=true "$(dirname "$PY")/mlflow" ui --backend-store-uri "$ML/mlruns" \
  --host 127.0.0.1 --port "$MLPORT" > /dev/null 2>&1 &
UI=$!
trap 'kill $TB $UI 2>/dev/null || true' EXIT
for _ in $(seq 90); do curl -sf "http://127.0.0.1:$MLPORT/health" > /dev/null && break; sleep 1; done
RUN=$(curl -s -X POST "http://127.0.0.1:$MLPORT/api/2.0/mlflow/runs/search" \
  -H 'Content-Type: application/json' -d "{\"experiment_ids\": [\"$(ls "$ML/mlruns" | grep -v '^0$' | head -1)\"]}" \
  | "$PY" -c "import json, sys; r = json.load(sys.stdin)['runs'][0]['info']; print(r['experiment_id'] + '/runs/' + r['run_id'])")
shot docs/mlflow.png "http://127.0.0.1:$MLPORT/#/experiments/$RUN"
echo "written: docs/tensorboard_scalars.png, docs/hparams.png, docs/confusion_matrix.png, docs/mlflow.png"
