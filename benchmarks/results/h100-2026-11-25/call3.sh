set -x
mkdir -p ../shared && cp -r .devshared/bench .devshared/corpora ../shared/
export PYTHONUNBUFFERED=1 CHARGEN_CACHE=/tmp/cgcache
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu,utilization.gpu --format=csv
timeout 150 python3 -m pytest -q tests/test_gpu.py tests/test_chunked.py tests/test_sampler.py tests/test_recipes.py tests/test_model.py 2>&1 | tail -30 | tee $OUT/tests.txt
timeout 90 python3 benchmarks/sample_probe.py 2>&1 | tee $OUT/sample_probe.txt
timeout 90 python3 benchmarks/sample_speed.py --device cuda --length 3000 2>&1 | tee $OUT/sample_speed.txt
timeout 90 python3 benchmarks/train_speed.py --device cuda --seconds 15 2>&1 | tee $OUT/train_speed.txt
timeout 110 python3 benchmarks/train_speed.py --device cuda --seconds 10 --shape lstm,3,1024,128,128 2>&1 | tee $OUT/train_speed_1024.txt
