"""cli.py through typer's CliRunner: exact exit codes, stdout (the product) kept apart from stderr,
and the exact configs the library receives."""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import fields
from pathlib import Path

import pytest
import torch
import typer.main
from conftest import interrupt_at
from typer.testing import CliRunner

from chargen import (
    CharRNN,
    ModelConfig,
    SampleConfig,
    TrainConfig,
    TrainResult,
    evaluate_carried,
    evaluate_windows,
    load_model,
    read_checkpoint,
    sample_texts,
    save_checkpoint,
)
from chargen.cli import app
from chargen.data import Sources
from chargen.data.corpus import split_ids
from chargen.data.vocab import UNKNOWN
from chargen.modelfile.checkpoint import FORMAT_VERSION
from chargen.modelfile.state import RunState


# This typer's CliRunner keeps stdout and stderr apart: result.stdout, result.stderr (result.output mixes them).
runner = CliRunner()

TINY = ["--cell", "gru", "--layers", "1", "--hidden-size", "8", "--embedding-dim", "5", "--batch-size", "3",
        "--seq-len", "12", "--max-steps", "10", "--max-time", "0", "--eval-every", "5", "--save-every", "5",
        "--warmup-steps", "2", "--device", "cpu"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_domain_error(result, *needles: str) -> str:
    """Exit 1, nothing on stdout, one stderr line 'error: ... (hint: ...)', no traceback."""
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an escaped exception
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "hint:" in lines[0]
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


@pytest.fixture
def model_vocab(trained_run):
    model, vocab, _ = load_model(trained_run.best)
    return model, vocab


# -- train ------------------------------------------------------------------------------
def test_train_writes_run_and_json(tmp_path, corpus_file, monkeypatch):
    """`chargen train --json` must exit 0, write best.pt/last.pt/metrics.jsonl and print one JSON summary line."""
    monkeypatch.chdir(tmp_path)
    result = invoke("train", corpus_file, *TINY, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert result.stdout.count("\n") == 1
    run_dir = Path("checkpoints/poem-gru")
    assert summary["run_dir"] == str(run_dir)
    assert (summary["steps"], summary["stop_reason"], summary["device"]) == (10, "max_steps", "cpu")
    assert all((run_dir / name).is_file() for name in ("best.pt", "last.pt", "metrics.jsonl"))
    best = read_checkpoint(run_dir / "best.pt")
    assert summary["best_val_loss"] == round(best["best_val_loss"], 4)
    assert summary["best_val_bpc"] == round(best["best_val_loss"] / math.log(2), 4)
    assert summary["parameters"] == sum(t.numel() for t in best["model"].values())
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2


def test_train_summary_names_the_model_trained(tmp_path, corpus_file):
    """The summary must name the model the run trained: the recipe's choices for a fresh run
    (no dropout for under one planned pass), the checkpoint's on a resume, whatever the flags say."""
    fresh = invoke("train", corpus_file, *TINY, "--json", "--out", tmp_path / "a")
    assert fresh.exit_code == 0, fresh.stderr
    assert json.loads(fresh.stdout)["model"] == "gru 1x8, embedding 5, dropout 0.0"
    given = invoke("train", corpus_file, *TINY, "--dropout", "0.3", "--out", tmp_path / "b")
    assert given.exit_code == 0, given.stderr
    assert "gru 1x8, embedding 5, dropout 0.3" in given.stderr  # the table
    resumed = invoke("train", corpus_file, "--out", tmp_path / "b", "--resume", "--dropout", "0", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["model"] == "gru 1x8, embedding 5, dropout 0.3"


def test_resume_warns_about_the_settings_it_ignores(tmp_path, corpus_file):
    """A resume continues with the run's own settings: flags that would change them are named in one
    warning line; --device, --precision and a new budget, which a resume does take, are not; --cell
    is named when --out already says which run; no flags, no warning."""
    assert invoke("train", corpus_file, *TINY, "--out", tmp_path / "run").exit_code == 0
    resumed = invoke("train", corpus_file, "--out", tmp_path / "run", "--resume", "--layers", "3", "--dropout", "0.2",
                     "--cell", "gru", "--max-steps", "12", "--device", "cpu", "--precision", "fp32", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.stderr == ("warning: --resume continues with the run's own settings; ignored: --cell, "
                              "--num-layers, --dropout (start a new run to change them)\n")
    assert json.loads(resumed.stdout)["steps"] == 12
    assert json.loads(resumed.stdout)["model"] == "gru 1x8, embedding 5, dropout 0.0"
    plain = invoke("train", corpus_file, "--out", tmp_path / "run", "--resume", "--device", "cpu", "--json")
    assert plain.exit_code == 0 and plain.stderr == ""


def test_resume_without_out_finds_the_newest_run_and_names_it(tmp_path, corpus_file, monkeypatch):
    """The quick start's case: the default folder holds a model without last.pt (the shipped one), the user's
    run went to -2 and was stopped. `--resume` alone must continue -2 and say so on stderr; `--cell` narrows
    the search; a corpus with no run is one error line."""
    monkeypatch.chdir(tmp_path)
    shipped = Path("checkpoints/poem-gru")
    shipped.mkdir(parents=True)
    (shipped / "best.pt").write_bytes(b"the shipped model")
    assert invoke("train", corpus_file, *TINY, "-q").exit_code == 0
    assert invoke("train", corpus_file, *TINY, "--cell", "rnn", "-q").exit_code == 0  # saved last: newest
    rnn = Path("checkpoints/poem-rnn")
    resumed = invoke("train", corpus_file, "--resume", "--max-steps", "14", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.stderr == f"resuming {rnn}\n"
    assert (json.loads(resumed.stdout)["run_dir"], json.loads(resumed.stdout)["steps"]) == (str(rnn), 14)
    gru = invoke("train", corpus_file, "--resume", "--cell", "gru", "--max-steps", "12", "--json")
    assert gru.exit_code == 0 and gru.stderr == f"resuming {shipped}-2\n"
    assert json.loads(gru.stdout)["steps"] == 12 and (shipped / "best.pt").read_bytes() == b"the shipped model"
    assert assert_domain_error(invoke("train", corpus_file, "--resume", "--cell", "lstm")) == (
        "error: nothing to resume: no poem-lstm run under checkpoints/ holds a last.pt "
        "(hint: drop --resume to start a new run, or pass --out RUN_DIR)")


def test_resume_max_time_adds_to_the_run(tmp_path, corpus_file):
    """`--resume --max-time S` gives a finished run S more seconds (its budget becomes elapsed + S) and
    its schedule goes on from the rate it reached; a step limit already reached is one error line."""
    assert invoke("train", corpus_file, *TINY, "-q", "--out", tmp_path / "run").exit_code == 0
    before = read_checkpoint(tmp_path / "run" / "last.pt")
    more = invoke("train", corpus_file, "--out", tmp_path / "run", "--resume", "--max-time", "0.3", "--json")
    assert more.exit_code == 0, more.stderr
    summary, after = json.loads(more.stdout), read_checkpoint(tmp_path / "run" / "last.pt")
    assert summary["stop_reason"] == "max_time" and summary["steps"] > 10
    assert after["train_config"]["max_time"] == pytest.approx(before["elapsed"] + 0.3)
    assert (after["train_config"]["max_steps"], after["run_state"]["extended_at_step"]) == (0, 10)
    assert after["elapsed"] >= before["elapsed"] + 0.3
    assert assert_domain_error(invoke("train", corpus_file, "--out", tmp_path / "run", "--resume", "--max-steps",
                                      "5"), f"at step {summary['steps']} already", "--max-steps above")


def test_train_quiet_prints_nothing(tmp_path, corpus_file):
    """--quiet must leave stdout and stderr empty on success (no bar, no table)."""
    result = invoke("train", corpus_file, *TINY, "--quiet", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 10


def test_train_summary_table_on_stderr(tmp_path, corpus_file):
    """Without --json the summary is a table on stderr; stdout stays empty for scripts."""
    result = invoke("train", corpus_file, *TINY, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "Training summary" in result.stderr and "max_steps" in result.stderr


FLAG_VALUES = {  # distinctive, non-default values for every config field
    "cell": "gru", "num_layers": 3, "hidden_size": 17, "embedding_dim": 9, "dropout": 0.25,
    "batch_size": 5, "seq_len": 11, "lr": 0.004, "weight_decay": 0.02, "warmup_steps": 7, "min_lr_frac": 0.2,
    "grad_clip": 0.5, "max_steps": 123, "max_time": 45.5, "patience": 4, "eval_every": 13, "save_every": 17,
    "val_frac": 0.15, "seed": 99, "device": "cpu", "precision": "fp32", "impl": "reference",
    "val_chars": 5000, "min_char_count": 2, "sample_chars": 37, "tensorboard": True, "val_files": 3,
    "vocab": "bytes", "records": "jsonl:name", "max_record_chars": 321, "threads": 3,
}


# A run's history, not settings: written by a resume that extends the budget, and the corpus as read.
RUN_RECORD = {"extended_at_step", "extended_at_time", "extended_from_lr", "corpus", "include", "exclude"}


def test_flag_values_cover_every_field():
    """A new config field needs a distinctive value here, or the flag-mapping test below would skip it."""
    assert set(config_fields()) <= FLAG_VALUES.keys()
    # The run's history is the checkpoint's, never a setting (no flag, no carve-out for a resume).
    assert {f.name for f in fields(RunState)} == RUN_RECORD and not RUN_RECORD & {f.name for f in fields(TrainConfig)}


@pytest.fixture
def captured(monkeypatch):
    """Replace the library's train() in the CLI by a recorder; return what it received."""
    calls = []

    def fake_train(corpus, model_config, config, out=None, resume=False, progress=None, **budget):
        calls.append(dict(corpus=corpus, model_config=model_config, config=config, out=out, resume=resume,
                          progress=progress, **budget))
        return TrainResult(Path("runs/x"), 3, 1.5, 0.5, 123, 1000.4, "max_steps", "cpu")

    monkeypatch.setattr("chargen.cli.train.run_training", fake_train)
    return calls


# --init names a model that must exist: tests/training/test_init.py checks that it reaches TrainConfig.init.
NEEDS_A_MODEL = {"init"}


def config_fields() -> list[str]:
    return [f.name for f in fields(ModelConfig) if f.name != "vocab_size"] + \
        [f.name for f in fields(TrainConfig) if f.name not in RUN_RECORD | NEEDS_A_MODEL]


def train_options() -> set[str]:
    command = typer.main.get_command(app).commands["train"]
    return {opt for param in command.params for opt in param.opts}


def test_every_config_field_has_a_train_flag():
    """Every ModelConfig/TrainConfig field must be settable from `chargen train` by its kebab-case name."""
    missing = [f"--{name.replace('_', '-')}" for name in config_fields()
               if f"--{name.replace('_', '-')}" not in train_options()]
    assert missing == []


def test_every_train_flag_reaches_its_field(captured):
    """Each flag's value must land in its own config field and no other (fields without a flag keep defaults)."""
    present = [n for n in config_fields() if f"--{n.replace('_', '-')}" in train_options()]
    args = ["train", "poem.txt"]
    for name in present:
        flag = f"--{name.replace('_', '-')}"
        args += [flag] if FLAG_VALUES[name] is True else [flag, str(FLAG_VALUES[name])]  # a bool is a bare flag
    result = invoke(*args, "--out", "runs/x", "--resume", "--quiet")
    assert result.exit_code == 0, result.stderr
    (call,) = captured
    assert call["model_config"] == ModelConfig(**{n: FLAG_VALUES[n] for n in present
                                                  if n in ModelConfig.__dataclass_fields__})
    assert call["config"] == TrainConfig(**{n: FLAG_VALUES[n] for n in present
                                            if n in TrainConfig.__dataclass_fields__})
    assert (call["corpus"], call["out"], call["resume"], call["progress"]) == \
        (Sources(("poem.txt",)), Path("runs/x"), True, False)
    # A resume takes the budget as a new one (seconds added, a new step total) and keeps the run's dropout.
    assert (call["more_time"], call["max_steps"], call["auto_dropout"]) == (45.5, 123, False)


def test_train_flag_defaults_come_from_dataclasses(captured):
    """With no flags the library must receive exactly ModelConfig() and TrainConfig() defaults."""
    result = invoke("train", "poem.txt", "--json")
    assert result.exit_code == 0, result.stderr
    (call,) = captured
    assert call["model_config"] == ModelConfig() and call["config"] == TrainConfig()
    assert (call["out"], call["resume"], call["progress"]) == (None, False, False)  # --json: no bar either
    assert call["auto_dropout"] is True and "more_time" not in call  # a CPU recipe run: the dropout rule decides
    summary = json.loads(result.stdout)
    # The fake run wrote no best.pt, so the summary names none.
    assert summary == {"run_dir": str(Path("runs/x")), "best_checkpoint": None, "steps": 3, "stop_reason": "max_steps",
                       "best_val_loss": 1.5, "best_val_bpc": round(1.5 / math.log(2), 4), "elapsed_s": 0.5,
                       "parameters": 123, "chars_per_s": 1000, "device": "cpu", "startup_s": 0.0, "threads": ""}


@pytest.mark.parametrize("flag", ["--layers", "--num-layers"])
def test_layers_alias(captured, flag):
    """--layers is an alias of --num-layers; both must set ModelConfig.num_layers."""
    assert invoke("train", "poem.txt", flag, "4").exit_code == 0
    assert captured[0]["model_config"].num_layers == 4


def test_train_ctrl_c_exits_130_after_saving(tmp_path, corpus_file, monkeypatch):
    """Ctrl-C during training must save last.pt and exit 130 (not 0, not a traceback)."""
    interrupt_at(monkeypatch, 3)
    result = invoke("train", corpus_file, *TINY, "--quiet", "--out", tmp_path / "run")
    assert result.exit_code == 130
    assert "interrupted" in result.stderr
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 3


def test_a_run_stopped_before_its_first_evaluation_names_no_best_checkpoint(tmp_path, corpus_file, monkeypatch):
    """Guards against the summary pointing at a best.pt that was never written (Ctrl-C before the
    first evaluation): it names none, and the run folder indeed holds last.pt alone."""
    interrupt_at(monkeypatch, 2)
    result = invoke("train", corpus_file, *TINY, "--json", "--out", tmp_path / "run", "--eval-every", "1000")
    assert result.exit_code == 130
    summary = json.loads(result.stdout)
    assert summary["best_checkpoint"] is None and summary["steps"] == 2
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.toml", "last.pt"]


# -- sample -----------------------------------------------------------------------------
def test_sample_stdout_is_only_the_text(trained_run, model_vocab):
    """stdout must be exactly prime + `length` characters + one newline; nothing on stderr with an explicit path."""
    model, vocab = model_vocab
    result = invoke("sample", trained_run.best, "--seed", "1", "--length", "20")
    assert result.exit_code == 0, result.stderr
    expected = sample_texts(model, vocab, SampleConfig(length=20, seed=1))[0]
    assert result.stdout == expected + "\n" and len(result.stdout) == 21
    assert result.stderr == ""
    primed = invoke("sample", trained_run.best, "--seed", "1", "--length", "20", "--prime", "How ")
    assert primed.stdout == sample_texts(model, vocab, SampleConfig(length=20, seed=1, prime="How "))[0] + "\n"
    assert primed.stdout.startswith("How ") and len(primed.stdout) == 25


def test_sample_uses_newest_best_in_cwd(tmp_path, trained_run, model_vocab, monkeypatch):
    """Without CHECKPOINT, sample must use the newest checkpoints/**/best.pt of a training run (not of a
    comparison, however new) and name it on stderr only."""
    monkeypatch.chdir(tmp_path)
    old, new = Path("checkpoints/old-run/best.pt"), Path("checkpoints/deep/new-run/best.pt")
    model, vocab = model_vocab
    torch.manual_seed(0)
    other = CharRNN(model.config)  # an untrained model: picking it would change the text
    old.parent.mkdir(parents=True)
    new.parent.mkdir(parents=True)
    save_checkpoint({"model_config": other.config.to_dict(), "vocab": list(vocab.chars),
                     "model": other.state_dict()}, old)
    shutil.copy(trained_run.best, new)
    os.utime(old, (2_000_000, 2_000_000))
    os.utime(new, (1_000_000, 3_000_000))
    compared = Path("checkpoints/poem-compare/rnn/best.pt")  # `chargen compare`'s runs are no training runs
    compared.parent.mkdir(parents=True)
    (compared.parent.parent / "comparison.json").write_text('{"cells": ["rnn"]}')
    shutil.copy(old, compared)
    result = invoke("sample", "--seed", "3", "--length", "30")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"using {new}\n"
    assert result.stdout == sample_texts(model, vocab, SampleConfig(length=30, seed=3))[0] + "\n"
    quiet = invoke("sample", "--seed", "3", "--length", "30", "-q")
    assert quiet.stderr == "" and quiet.stdout == result.stdout


@pytest.mark.parametrize("flag", ["--temp", "--temperature"])
def test_temperature_alias(trained_run, model_vocab, flag):
    """--temperature is an alias of --temp; 0 must give the greedy text whatever the seed."""
    model, vocab = model_vocab
    greedy = sample_texts(model, vocab, SampleConfig(length=30, temperature=0, prime="Up"))[0]
    for seed in ("1", "2"):
        result = invoke("sample", trained_run.best, flag, "0", "--length", "30", "--prime", "Up", "--seed", seed)
        assert result.exit_code == 0 and result.stdout == greedy + "\n"


def test_sample_several(trained_run, model_vocab):
    """--num-samples 3 must print the same 3 texts as the library, each under its own header."""
    model, vocab = model_vocab
    texts = sample_texts(model, vocab, SampleConfig(length=15, seed=2, prime="Up", num_samples=3,
                                                    temperature=1.5))
    result = invoke("sample", trained_run.best, "--num-samples", "3", "--length", "15", "--seed", "2",
                    "--prime", "Up", "--temp", "1.5")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "\n".join(f"----- sample {i + 1} -----\n{t}\n" for i, t in enumerate(texts))
    jsonl = invoke("sample", trained_run.best, "--num-samples", "3", "--length", "15", "--seed", "2",
                   "--prime", "Up", "--temp", "1.5", "--jsonl")
    assert jsonl.exit_code == 0
    lines = jsonl.stdout.splitlines()
    assert [json.loads(line) for line in lines] == [{"sample": i + 1, "text": t} for i, t in enumerate(texts)]


# -- info and eval ----------------------------------------------------------------------
def test_info_json(trained_run, model_vocab):
    """info --json must report the checkpoint's own step, sizes, loss and configs."""
    model, vocab = model_vocab
    ckpt = read_checkpoint(trained_run.best)
    result = invoke("info", trained_run.best, "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["checkpoint"] == str(trained_run.best)
    assert (info["format_version"], info["step"], info["vocab_size"]) == (FORMAT_VERSION, ckpt["step"], len(vocab))
    assert info["unknown_symbol"] == UNKNOWN  # every vocabulary has it, frequent characters or not
    assert info["parameters"] == model.num_parameters()
    assert info["best_val_loss"] == round(ckpt["best_val_loss"], 4)
    assert info["best_val_bpc"] == round(ckpt["best_val_loss"] / math.log(2), 4)
    assert info["model_config"] == ckpt["model_config"] and info["train_config"] == ckpt["train_config"]
    table = invoke("info", trained_run.best)
    assert table.exit_code == 0 and table.stdout == "" and "model.hidden size" in table.stderr


def test_eval_val_split_reproduces_training_loss(trained_run, model_vocab):
    """eval --split val must score exactly the validation tail training used, giving best.pt's best_val_loss."""
    model, vocab = model_vocab
    best = read_checkpoint(trained_run.best)
    result = invoke("eval", trained_run.best, trained_run.corpus, "--split", "val", "--window", "8", "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows["loss"] == pytest.approx(best["best_val_loss"], abs=1e-4)
    assert rows["bpc"] == pytest.approx(best["best_val_loss"] / math.log(2), abs=1e-4)
    val = split_ids(vocab.encode(trained_run.corpus.read_text(encoding="utf-8")), 0.1)[1]
    assert rows["chars"] == evaluate_carried(model, val, torch.device("cpu")).chars
    windows = evaluate_windows(model, val, torch.device("cpu"), window=8)
    assert rows["loss_window8"] == round(windows.loss, 4) and rows["bpc_window8"] == round(windows.bpc, 4)
    assert rows["split"] == "val"


def test_eval_all_scores_whole_text(trained_run, model_vocab):
    """eval without --split must score the whole text, and the val tail alone must score fewer characters."""
    model, vocab = model_vocab
    ids = vocab.encode(trained_run.corpus.read_text(encoding="utf-8"))
    whole = evaluate_carried(model, ids, torch.device("cpu"))
    result = invoke("eval", trained_run.best, trained_run.corpus, "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert (rows["chars"], rows["loss"], rows["split"]) == (whole.chars, round(whole.loss, 4), "all")
    assert "loss_window8" not in rows


# -- bad input: exact exit codes and messages -------------------------------------------
@pytest.mark.parametrize("case, needle", [
    ("missing", "not found"), ("empty", "empty"), ("latin1", "UTF-8"), ("short", "batch size"),
])
def test_train_bad_corpus(tmp_path, monkeypatch, case, needle):
    """A missing, empty, non-UTF-8 or too-short corpus must exit 1 with one error line and a hint."""
    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "c.txt"
    if case == "empty":
        corpus.write_bytes(b"")
    elif case == "latin1":
        corpus.write_bytes(b"na\xefve " * 50)
    elif case == "short":
        corpus.write_text("abcdefghij" * 3, encoding="utf-8")  # 27 train characters < 3 x (12 + 1)
    assert_domain_error(invoke("train", corpus, *TINY), needle)


def test_train_bad_value_is_domain_error(tmp_path, corpus_file):
    """A value typer accepts but the config refuses (--lr -1) must exit 1 naming the field, writing nothing."""
    assert_domain_error(invoke("train", corpus_file, *TINY, "--lr", "-1", "--out", tmp_path / "run"), "lr")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_train_cuda_without_cuda(tmp_path, corpus_file):
    """--device cuda on a machine without CUDA must exit 1 suggesting --device cpu."""
    args = [a if a != "cpu" else "cuda" for a in TINY]
    line = assert_domain_error(invoke("train", corpus_file, *args, "--out", tmp_path / "run"), "CUDA")
    assert "--device cpu" in line


def test_sample_unknown_prime_characters(trained_run):
    """Prime characters the model never saw are read as its unknown symbol, named in one stderr line."""
    result = invoke("sample", trained_run.best, "--prime", "Hi Zq€", "--seed", "1", "--length", "20")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == "warning: the model never learned 'Z', 'q', '€'; read as its unknown symbol U+FFFD\n"
    assert result.stdout.startswith("Hi Zq€") and len(result.stdout) == len("Hi Zq€") + 20 + 1


@pytest.mark.parametrize("args, needle", [
    (["--temp", "-0.5"], "temperature"), (["--length", "-3"], "length"), (["--top-p", "0"], "top-p"),
    (["--num-samples", "0"], "num-samples"),
])
def test_sample_bad_settings(trained_run, args, needle):
    """Out-of-range sampling flags must exit 1 with the field named and a hint."""
    assert_domain_error(invoke("sample", trained_run.best, *args), needle)


def test_sample_missing_and_corrupt_checkpoints(tmp_path, trained_run, monkeypatch):
    """A missing path, a truncated file, or no checkpoint in the cwd at all must each exit 1 with one line."""
    assert_domain_error(invoke("sample", tmp_path / "nope.pt"), "not found")
    blob = trained_run.best.read_bytes()
    (tmp_path / "half.pt").write_bytes(blob[: len(blob) // 2])
    assert_domain_error(invoke("sample", tmp_path / "half.pt"), "truncated")
    monkeypatch.chdir(tmp_path)
    assert_domain_error(invoke("sample"), "no best.pt of a training run found under checkpoints/")


def test_sample_text_file_as_checkpoint(tmp_path):
    """Passing a text file where a checkpoint belongs must exit 1 with a message, not a KeyError traceback."""
    notes = tmp_path / "notes.txt"
    notes.write_text("hello world\n", encoding="utf-8")
    assert_domain_error(invoke("sample", notes), "not a valid chargen checkpoint")


def test_eval_bad_options(trained_run):
    """An unknown --split or a --window longer than the text must exit 1 naming the problem."""
    assert_domain_error(invoke("eval", trained_run.best, trained_run.corpus, "--split", "test"), "unknown split")
    assert_domain_error(invoke("eval", trained_run.best, trained_run.corpus, "--split", "val", "--window", "5000"),
                        "too short")


@pytest.mark.parametrize("args, needle", [
    (["sample", "x.pt", "--bogus"], "--bogus"),
    (["sample", "x.pt", "--length", "ten"], "Invalid value for '--length'"),
    (["train"], "Invalid value for CORPUS: missing"),
])
def test_usage_errors_exit_2(args, needle):
    """Unknown options, non-integer numbers and missing arguments are usage errors: exit 2, stdout empty."""
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert needle in result.stderr and "Traceback" not in result.stderr
