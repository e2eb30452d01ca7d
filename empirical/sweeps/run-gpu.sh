#!/bin/sh
# The one command to run on a machine with a GPU (from the repository root, with the CIFAR-10
# JPEG mirror copied to the ignored .data/ folder):
#
#   STINGY_COMMIT=<git rev-parse HEAD> sh empirical/sweeps/run-gpu.sh
#
# It first measures student throughput on the GPU (bench_students: PreResNet-20 and CNN
# students, one at a time vs 4 at once with vmap and loop, bank vs teacher per batch; ~1 min)
# into students_bench.json, then runs `stingy sweep all --profile gpu-10min` with
# `--set mode=$MODE` (default vmap; MODE=loop if the benchmark says loop is faster) starting
# no job after BUDGET seconds, writes
# provenance.json (device, torch, date, commit) beside the results and copies the small result
# files to $OUT (a folder to collect them from) when that is set. Rerunning it with the same
# SWEEP_OUT resumes: finished jobs are skipped, an interrupted one continues from its
# checkpoint. Tested on CPU at toy size (tests/empirical/test_sweep_script.py).
set -eu
PROFILE=${PROFILE:-gpu-10min}
DATA=${DATA:-.data/cifar10-jpeg.tar.gz}
SWEEP_OUT=${SWEEP_OUT:-results/cifar10_sweep_gpu}
DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-420}
MODE=${MODE:-vmap}
BENCH_IMAGES=${BENCH_IMAGES:-8192}
PYTHON=${PYTHON:-python}
"$PYTHON" -c "import stingy.empirical.sweep" 2>/dev/null || \
    "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e .
mkdir -p "$SWEEP_OUT"
"$PYTHON" - "$SWEEP_OUT" "$DEVICE" "$BENCH_IMAGES" <<'PY'
import sys
from stingy.benchmarks.bench_students import bench_students, students_markdown
from stingy.machine import machine_info
from stingy.io import write_json
out, device, images = sys.argv[1], sys.argv[2], int(sys.argv[3])
result = {"machine": machine_info()}
for model, teacher in (("preresnet20", "resnet18"), ("cnn", "resnet18")):
    result[model] = bench_students(model=model, teacher_model=teacher, images=images,
                                   batch_size=256, epochs=2, device=device)
    print(students_markdown(result[model]), flush=True)
write_json(f"{out}/students_bench.json", result)
PY
"$PYTHON" -m stingy sweep all --profile "$PROFILE" --set "mode=$MODE" --data "$DATA" \
    --out "$SWEEP_OUT" --device "$DEVICE" --budget-seconds "$BUDGET"
"$PYTHON" - "$SWEEP_OUT" "$PROFILE" <<'PY'
import datetime, json, os, sys
import torch
from stingy.io import write_json
out, profile = sys.argv[1], sys.argv[2]
write_json(f"{out}/provenance.json", {
    "profile": profile, "commit": os.environ.get("STINGY_COMMIT", "unknown"),
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "torch": torch.__version__, "cuda": torch.version.cuda,
    "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
    "threads": torch.get_num_threads()})
PY
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT/sweep"
    cp "$SWEEP_OUT"/*.csv "$SWEEP_OUT"/*.json "$OUT/sweep/"
    for result in "$SWEEP_OUT"/jobs/*/result.json; do
        job=$(basename "$(dirname "$result")")
        cp "$result" "$OUT/sweep/$job.json"
    done
fi
