#!/usr/bin/env bash
# GPU smoke test: one epoch of MNIST-shaped data (60,000 generated 28x28 samples) with
# trainer=gpu, bf16-mixed and torch.compile, printing throughput. Run on a machine with a GPU:
#   bash scripts/gpu_smoke.sh            (after `make install`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-outputs/gpu_smoke}
"$PY" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: this script needs a GPU"
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY
start=$(date +%s.%N)
"$PY" -m logitlab.train data=blobs data.num_features=784 data.num_classes=10 \
  data.source_kwargs.n_samples=70000 data.batch_size=1024 data.val_fraction=0.0858 \
  data.test_fraction=0.0001 model.net.hidden_sizes=[256,128] trainer=gpu \
  trainer.precision=bf16-mixed compile=true trainer.max_epochs=1 "hydra.run.dir=$OUT" "$@"
end=$(date +%s.%N)
"$PY" - "$OUT" "$start" "$end" <<'PY'
import json, sys
metrics = json.load(open(f"{sys.argv[1]}/metrics.json"))
seconds = float(sys.argv[3]) - float(sys.argv[2])
print(f"one epoch of 64,000 samples incl. start-up and compile: {seconds:.1f} s "
      f"({64000 / seconds:,.0f} samples/s); test/acc {metrics['test/acc']:.4f}")
PY
