#!/usr/bin/env bash
# Pictures for the README, made from a real small sweep:
#   docs/hparams.png           TensorBoard's HPARAMS table of a 4-job sweep (headless Chromium)
#   docs/confusion_matrix.png  the test confusion-matrix image of one job, from its event file
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
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$(mktemp -d)" --window-size=1500,800 --virtual-time-budget=20000 \
  --screenshot="$PWD/docs/hparams.png" "http://127.0.0.1:$PORT/#hparams" 2> /dev/null
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
echo "written: docs/hparams.png, docs/confusion_matrix.png"
