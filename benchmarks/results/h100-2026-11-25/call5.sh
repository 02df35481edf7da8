set -x
mkdir -p ../shared && cp -r .devshared/bench .devshared/corpora ../shared/
export PYTHONUNBUFFERED=1 CHARGEN_CACHE=/tmp/cgcache
timeout 105 python3 benchmarks/train_quality.py --device cuda --seconds 75 --skip-reference -- --precision bf16 2>&1 | tee $OUT/q_bf16.txt
CHARGEN_LAYERWISE=0 timeout 105 python3 benchmarks/train_quality.py --device cuda --seconds 75 --skip-reference -- --precision bf16 2>&1 | tee $OUT/q_bf16_stacked.txt
CHARGEN_LAYERWISE=0 timeout 105 python3 benchmarks/train_quality.py --device cuda --seconds 75 --skip-reference 2>&1 | tee $OUT/q_fp16_stacked.txt
timeout 105 python3 benchmarks/train_quality.py --device cuda --seconds 75 --skip-reference -- --precision fp32 2>&1 | tee $OUT/q_fp32.txt
