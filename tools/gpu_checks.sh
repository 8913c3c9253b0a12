#!/usr/bin/env bash
# The GPU checks in one command, for a lent GPU machine that has PyTorch, numpy, scikit-learn,
# safetensors, psutil, nvidia-ml-py and pytest but not the web stack (no Django, Celery or
# Redis) and no network: the training engine's CUDA tests, a data-parallel run over NCCL, one
# NVML reading through the worker's sampler, bench/gpu_fmnist.py and bench/repeats.py on CUDA.
#
# Here, first:   tools/gpu_checks.sh --prepare    (copies Fashion-MNIST into var/gpu-data)
# There, from the repo root, carrying var/gpu-data:
#                bash tools/gpu_checks.sh          (about 6 minutes on an H100/H200)
# Each step's output goes to $OUT/<step>.log (the device tool brings $OUT back) and its exit
# status to the summary at the end; a step that fails does not stop the others.
# DEVICE=cpu runs the same steps small on the CPU (gloo for NCCL; no NVML), to check the
# script itself in an environment like the GPU machine's before spending device time on it.
set -u
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
    source="${FITBOARD_DATA_DIR:-var/data}/fashion-mnist"
    mkdir -p var/gpu-data/fashion-mnist
    cp "$source"/*-ubyte.gz var/gpu-data/fashion-mnist/
    du -sh var/gpu-data
    exit 0
fi

OUT="${OUT:-var/gpu-checks}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
export PYTHONPATH="$PWD:$PWD/packages/fitboard-model/src"
export FITBOARD_DATA_DIR="$PWD/var/gpu-data"
export PYTHONUNBUFFERED=1
summary=()

step() {  # step NAME COMMAND...: run it, keep its log and its exit status
    local name="$1"
    shift
    echo "=== $name: $*"
    local started=$SECONDS
    "$@" >"$OUT/$name.log" 2>&1
    local status=$?
    tail -n 25 "$OUT/$name.log"
    summary+=("$name: exit $status, $((SECONDS - started)) s")
}

step gpu-info "$PYTHON" -c "
import torch
print('torch', torch.__version__, 'cuda', torch.version.cuda)
print('devices', [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
assert torch.cuda.is_available() or '$DEVICE' == 'cpu', 'no CUDA device'
"

# The CUDA-marked tests of the engine (the web stack's one needs Django: not here), from the
# files that hold them (others import packages this machine may lack). The project's pytest
# options name plugins of the web stack, so they are replaced.
step cuda-tests "$PYTHON" -m pytest -o addopts="" -p no:cacheprovider -m gpu -rA -q \
    $(grep -l "pytest.mark.gpu" tests/training/test_*.py)

# Data-parallel over NCCL: as many ranks as GPUs (one GPU: one rank, which still starts the
# NCCL group, broadcasts and all-reduces every step).
ranks=$("$PYTHON" -c "import torch; print(max(torch.cuda.device_count(), 1))")
[ "$DEVICE" = cpu ] && ranks=2
step nccl-ddp "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$ranks" \
    tests/training/ddp_ranks.py "$OUT/ddp" "$DEVICE" "$ranks"

# NVML through the worker's sampler (loaded by path: its package imports the web stack), under
# load so that the utilisation it reads is not zero.
step nvml "$PYTHON" -c "
import importlib.util, threading, time, torch
spec = importlib.util.spec_from_file_location('sysmetrics', 'webapp/experiments/sysmetrics.py')
sysmetrics = importlib.util.module_from_spec(spec); spec.loader.exec_module(sysmetrics)
print('gpus', sysmetrics.gpu_names())
a = torch.randn(8192 if '$DEVICE' == 'cuda' else 256, 8192 if '$DEVICE' == 'cuda' else 256, device='$DEVICE')
busy = threading.Event()
def work():
    while not busy.is_set():
        a @ a
        if a.is_cuda:
            torch.cuda.synchronize()
threading.Thread(target=work, daemon=True).start()
time.sleep(1.0)
nvml = sysmetrics._nvml()
reading = sysmetrics.sample(nvml)
busy.set()
print(reading)
assert reading['sys/gpu_util_percent'] > 0 and reading['sys/gpu_memory_gb'] > 0
"

if [ "$DEVICE" = cpu ]; then
    step gpu-fmnist "$PYTHON" bench/gpu_fmnist.py --device cpu --epochs 1 --subset 500 --runs 1
    step repeats "$PYTHON" bench/repeats.py --device cpu --rounds 1
else
    step gpu-fmnist "$PYTHON" bench/gpu_fmnist.py --runs 3
    step repeats "$PYTHON" bench/repeats.py --device cuda --rounds 3
fi

echo "=== summary"
printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"
