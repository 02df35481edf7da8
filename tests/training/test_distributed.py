"""torchrun with two CPU processes (gloo): the same training as one process, one writer, resume,
and a checkpoint that loads on one CPU. Also: training with the reference cells (--impl reference)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from chargen import SampleConfig, load_model, sample_texts, train
from chargen.modelfile.checkpoint import read_checkpoint, save_checkpoint
from chargen.training.distributed import World, world_from_env

pytestmark = pytest.mark.slow

ARGS = ["--cell", "gru", "--num-layers", "2", "--hidden-size", "12", "--embedding-dim", "6", "--dropout", "0",
        "--batch-size", "6", "--seq-len", "10", "--lr", "0.01", "--warmup-steps", "2", "--max-time", "0",
        "--patience", "0", "--eval-every", "4", "--save-every", "4", "--seed", "3", "--device", "cpu",
        "--precision", "fp32"]


def torchrun(nproc: int, *args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "chargen", "train", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """One 2-process run of 12 steps, its 4 more steps after --resume, and a 1-process twin of the first part."""
    folder = tmp_path_factory.mktemp("ddp")
    corpus = folder / "poem.txt"
    corpus.write_text(("Twinkle, twinkle, little star,\nHow I wonder what you are!\n" * 40), encoding="utf-8")
    first = torchrun(2, corpus, *ARGS, "--max-steps", "12", "--out", folder / "ddp", "--json")
    ddp_last = read_checkpoint(folder / "ddp" / "last.pt")
    # A resumed run keeps its own configuration; give it 4 more steps the way a longer --max-steps would.
    extended = {**ddp_last, "train_config": {**ddp_last["train_config"], "max_steps": 16}}
    save_checkpoint(extended, folder / "ddp" / "last.pt")
    resumed = torchrun(2, corpus, "--out", folder / "ddp", "--resume", "--json")
    return folder, corpus, first, ddp_last, resumed


def single_process_twin(folder: Path, corpus: Path):
    from typer.testing import CliRunner

    from chargen.cli import app  # noqa: F401 - the same flags, parsed the CLI's way
    result = CliRunner().invoke(app, ["train", str(corpus), *ARGS, "--max-steps", "12", "--out",
                                      str(folder / "one"), "--json"])
    assert result.exit_code == 0, result.output
    return read_checkpoint(folder / "one" / "last.pt")


def test_two_processes_train_like_one_with_the_same_global_batch(two_ranks):
    """Guards against ranks reading the same streams, gradients summed instead of averaged, or a
    per-rank batch of the global size: 2 x 3 streams through DDP must end with the weights of one
    process on 6 streams, step for step (same seed, dropout off, fp32)."""
    folder, corpus, first, ddp_last, _ = two_ranks
    assert first.returncode == 0, first.stderr[-3000:]
    one = single_process_twin(folder, corpus)
    assert ddp_last["step"] == one["step"] == 12
    for name, tensor in one["model"].items():
        torch.testing.assert_close(ddp_last["model"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    ddp_metrics = [json.loads(line) for line in (folder / "ddp" / "metrics.jsonl").read_text().splitlines()][:3]
    one_metrics = [json.loads(line) for line in (folder / "one" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in ddp_metrics] == [m["step"] for m in one_metrics] == [4, 8, 12]
    for a, b in zip(ddp_metrics, one_metrics):  # the logged loss is the global batch's mean, as in one process
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)


def test_only_rank_zero_writes(two_ranks):
    """One summary on stdout, one metrics line per evaluation, no second run folder (-2) from rank 1."""
    folder, _, first, _, _ = two_ranks
    lines = [line for line in first.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and json.loads(lines[0])["steps"] == 12
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["ddp", "one"] or \
        sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["ddp"]
    assert sorted(p.name for p in (folder / "ddp").iterdir()) == ["best.pt", "config.toml", "last.pt", "metrics.jsonl"]


def test_resume_and_load_on_one_cpu(two_ranks):
    """--resume under torchrun continues the 2-rank run to its new limit; its checkpoint, with the
    global configuration, loads and samples in a plain single process."""
    folder, _, _, _, resumed = two_ranks
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads([line for line in resumed.stdout.splitlines() if line.startswith("{")][0])
    assert summary["steps"] == 16 and summary["stop_reason"] == "max_steps"
    steps = [json.loads(line)["step"] for line in (folder / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [4, 8, 12, 16]
    model, vocab, state = load_model(folder / "ddp" / "last.pt")
    assert state.train_config.batch_size == 6 and state.hidden is None
    text = sample_texts(model, vocab, SampleConfig(length=40, seed=1, prime="Twinkle"))[0]
    assert text.startswith("Twinkle") and len(text) == len("Twinkle") + 40 and set(text) <= set(vocab.chars)


def test_world_from_env(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert world_from_env() == World(0, 1, 0) and not World().distributed and World().is_main
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    world = world_from_env()
    assert world == World(1, 2, 1) and world.distributed and not world.is_main
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(Exception, match="inconsistent torchrun environment"):
        world_from_env()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_reference_impl_trains_like_torch(tmp_path, corpus_file, make_model_config, make_train_config, cell):
    """--impl reference runs the written-out cell equations; with the same seed (dropout off) ten
    steps of training must land on the weights that torch's fused layers reach."""
    cfg = make_train_config(max_steps=10, eval_every=5, save_every=5, precision="fp32")
    runs = {}
    for impl in ("torch", "reference"):
        result = train(corpus_file, make_model_config(cell=cell, impl=impl), cfg, out=tmp_path / impl, progress=False)
        runs[impl] = read_checkpoint(result.run_dir / "last.pt")
    assert runs["reference"]["model_config"]["impl"] == "reference"
    for name, tensor in runs["torch"]["model"].items():
        torch.testing.assert_close(runs["reference"]["model"][name], tensor, rtol=1e-4, atol=2e-5, msg=name)
