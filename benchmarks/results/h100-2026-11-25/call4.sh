set -x
mkdir -p ../shared && cp -r .devshared/bench .devshared/corpora ../shared/
export PYTHONUNBUFFERED=1 CHARGEN_CACHE=/tmp/cgcache
timeout 230 python3 benchmarks/train_quality.py --device cuda --seconds 75 2>&1 | tee $OUT/q_default.txt
timeout 120 python3 benchmarks/train_quality.py --device cuda --seconds 75 --skip-reference -- --lr 3e-3 2>&1 | tee $OUT/q_lr3.txt
timeout 120 python3 benchmarks/train_quality.py --device cuda --seconds 75 --skip-reference -- --dropout 0.35 2>&1 | tee $OUT/q_d035.txt
