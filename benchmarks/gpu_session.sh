#!/usr/bin/env bash
# Every GPU benchmark and the GPU tests, in two device calls of under 10 minutes each, for a
# session that is lent a GPU (the device tool runs one command at a time, 10 minutes at most):
#
#   bash benchmarks/gpu_session.sh 1    # GPU tests, sampling, training speed, the step probe (which also
#                                       # trains CharRNN with "torch" vs "per_layer" layers, same weights)
#   bash benchmarks/gpu_session.sh 2    # time to quality: the default recipe, and in fp16
#
# Results go to $OUT (the device tool's output folder) or to /tmp/chargen-gpu-results. Everything runs
# from a clone: the baseline is benchmarks/baseline.py and the corpus corpora/shakespeare.txt.
set -u
OUT=${OUT:-/tmp/chargen-gpu-results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 CHARGEN_CACHE=${CHARGEN_CACHE:-/tmp/cgcache}
run() {  # run NAME SECONDS COMMAND...: the command's output to the terminal and to $OUT/NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*"
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version())" | tee -a "$OUT/gpu.txt"
case "${1:-1}" in
1)
    run tests 150 python3 -m pytest -q tests/test_gpu.py tests/sample/test_rounds.py tests/sample/test_sampler.py \
        tests/sample/test_sample.py tests/training/test_recipes.py tests/model/test_model.py \
        tests/model/test_layers.py tests/training/test_lagged_figures.py
    run sample_speed 80 python3 benchmarks/sample_speed.py --device cuda --length 3000
    run sample_probe 80 python3 benchmarks/sample_probe.py
    run train_speed 100 python3 benchmarks/train_speed.py --device cuda --seconds 15
    run gpu_probe 120 python3 benchmarks/gpu_probe.py --quick --seconds 3
    ;;
2)
    run quality_default 240 python3 benchmarks/train_quality.py --device cuda --seconds 75
    run quality_fp16 130 python3 benchmarks/train_quality.py --device cuda --seconds 75 --skip-reference \
        -- --precision fp16
    ;;
*)
    echo "usage: bash benchmarks/gpu_session.sh 1|2" >&2
    exit 2
    ;;
esac
