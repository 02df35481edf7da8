set -x
mkdir -p ../shared && cp -r .devshared/bench .devshared/corpora ../shared/
export PYTHONUNBUFFERED=1 CHARGEN_CACHE=/tmp/cgcache
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
python3 -c "import torch,typer,tqdm,rich,numpy;print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), typer.__version__, numpy.__version__)"
timeout 150 python3 -m pytest -q -x tests/test_gpu.py 2>&1 | tail -25 | tee $OUT/test_gpu.txt
timeout 100 python3 benchmarks/gpu_probe.py --seconds 3 2>&1 | tee $OUT/probe.txt
timeout 100 python3 benchmarks/train_speed.py --device cuda --seconds 15 2>&1 | tee $OUT/train_speed.txt
timeout 60 python3 benchmarks/sample_speed.py --device cuda --length 2000 2>&1 | tee $OUT/sample_speed.txt
timeout 130 python3 benchmarks/train_quality.py --device cuda --seconds 80 --skip-reference -- --cell lstm --num-layers 3 --hidden-size 1024 --embedding-dim 256 --dropout 0.5 --weight-decay 0.1 --batch-size 128 --seq-len 128 --lr 2e-3 --precision bf16 --eval-every 300 2>&1 | tee $OUT/qA.txt
