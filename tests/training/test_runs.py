"""Run folders: clean-up of what a killed run leaves behind, which folder a run gets, which run a
resume without a folder continues, and which checkpoint sampling without one takes."""
from __future__ import annotations

import json
import os

import pytest

from chargen import ChargenError, train
from chargen.modelfile.checkpoint import remove_stale_temp_files
from chargen.training.runs import (
    choose_run_dir,
    mark_comparison,
    newest_checkpoint,
    newest_run,
)


def test_stale_temp_files_removed_and_run_resumes(tmp_path, corpus_file, make_model_config, make_train_config):
    """Temp files from a SIGKILL during a save must not pile up or be mistaken for checkpoints."""
    run = tmp_path / "run"
    train(corpus_file, make_model_config(), make_train_config(max_steps=10), out=run, progress=False)
    junk = [run / ".last.pt.abc123.tmp", run / ".best.pt.xyz.tmp"]
    for j in junk:
        j.write_bytes(b"half a checkpoint")
    keep = run / "notes.tmp"
    keep.write_text("mine")
    assert sorted(remove_stale_temp_files(run)) == sorted(junk)
    assert not any(j.exists() for j in junk) and keep.exists()
    for j in junk:
        j.write_bytes(b"half a checkpoint")
    result = train(corpus_file, make_model_config(), make_train_config(max_steps=10), out=run, resume=True,
                   progress=False)
    assert result.steps == 10 and not any(j.exists() for j in junk)


def test_default_folder_of_a_run_still_starting_is_not_reused(tmp_path):
    """A default folder whose run has locked it but not yet saved must not be handed to a second run."""

    default = tmp_path / "poem-gru"
    default.mkdir()
    (default / "run.lock").write_text("host 1")
    assert choose_run_dir(None, default, resume=False) == tmp_path / "poem-gru-2"
    assert choose_run_dir(default, default, resume=False) == default  # explicit: the lock itself will refuse


def test_damaged_resume_state_is_a_chargen_error(tmp_path, corpus_file, make_model_config, make_train_config):
    """A last.pt missing its training state must stop `--resume` with a message, not a KeyError traceback."""
    import pytest
    import torch

    from chargen import ChargenError
    from chargen.modelfile.checkpoint import save_checkpoint

    run = tmp_path / "run"
    train(corpus_file, make_model_config(), make_train_config(max_steps=10), out=run, progress=False)
    state = torch.load(run / "last.pt", weights_only=True)
    del state["optimizer"], state["format_version"]
    save_checkpoint(state, run / "last.pt")
    with pytest.raises(ChargenError, match="cannot resume from .*last.pt"):
        train(corpus_file, make_model_config(), make_train_config(max_steps=20), out=run, resume=True, progress=False)


def test_checkpoint_claiming_a_huge_model_is_refused_without_allocating(tmp_path, trained_run):
    """A tiny file whose config claims 65536 layers of 65536 units must be refused before any allocation."""
    import pytest
    import torch

    from chargen import ChargenError, load_model

    state = torch.load(trained_run.best, weights_only=True)
    state["model_config"] = {**state["model_config"], "hidden_size": 65536, "num_layers": 65536}
    path = tmp_path / "huge.pt"
    torch.save(state, path)
    with pytest.raises(ChargenError, match="weights that do not fit its configuration"):
        load_model(path)


def test_choose_run_dir(tmp_path):
    """An in-use default gets -2, -3...; an explicit in-use --out is refused; resume needs a last.pt."""
    default = tmp_path / "poem-lstm"
    assert choose_run_dir(None, default, resume=False) == default
    default.mkdir()
    assert choose_run_dir(None, default, resume=False) == default  # an empty folder is not in use
    (default / "best.pt").write_bytes(b"x")
    assert choose_run_dir(None, default, resume=False) == tmp_path / "poem-lstm-2"
    (tmp_path / "poem-lstm-2").mkdir()
    (tmp_path / "poem-lstm-2" / "last.pt").write_bytes(b"x")
    assert choose_run_dir(None, default, resume=False) == tmp_path / "poem-lstm-3"
    with pytest.raises(ChargenError, match="already holds a run"):
        choose_run_dir(default, default, resume=False)
    assert choose_run_dir(default, default, resume=True) == default  # best.pt holds the training state too
    with pytest.raises(ChargenError, match="nothing to resume"):
        choose_run_dir(tmp_path / "poem-lstm-9", default, resume=True)
    assert choose_run_dir(tmp_path / "poem-lstm-2", default, resume=True) == tmp_path / "poem-lstm-2"


def test_train_default_folder_not_overwritten(tmp_path, corpus_file, make_model_config, make_train_config):
    """A second run with the default folder must go to <corpus>-<cell>-2 and leave the first run's files alone."""
    mc, cfg = make_model_config(cell="gru"), make_train_config(max_steps=5)
    first = train(corpus_file, mc, cfg, root=tmp_path / "ckpts", progress=False)
    before = (first.run_dir / "last.pt").read_bytes()
    second = train(corpus_file, mc, cfg, root=tmp_path / "ckpts", progress=False)
    assert first.run_dir == tmp_path / "ckpts" / "poem-gru"
    assert second.run_dir == tmp_path / "ckpts" / "poem-gru-2"
    assert (first.run_dir / "last.pt").read_bytes() == before
    assert not (first.run_dir / "run.lock").exists()


def touch_run(folder, mtime: float, name: str = "last.pt"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"x")
    os.utime(folder / name, (mtime, mtime))
    return folder


def test_newest_run_is_the_corpus_run_with_the_latest_last_pt(tmp_path):
    """--resume without a folder must continue the run of this corpus saved last, not the first default
    folder: the shipped best.pt-only folder, other corpora, other names and comparisons never count."""
    root = tmp_path / "ckpts"
    touch_run(root / "poem-gru", 5_000, "best.pt")  # like the shipped model: nothing to resume
    first = touch_run(root / "poem-gru-2", 1_000)
    lstm = touch_run(root / "poem-lstm", 2_000)
    touch_run(root / "poem-gru-3", 3_000)
    touch_run(root / "poem-gru-x", 9_000)  # not a default folder name
    touch_run(root / "poems-gru", 9_000)  # another corpus
    touch_run(root / "poem-compare" / "gru", 9_000)  # a comparison's run
    assert newest_run("corpora/poem.txt", None, root) == root / "poem-gru-3"
    assert newest_run("poem.txt", "lstm", root) == lstm
    os.utime(first / "last.pt", (4_000, 4_000))
    assert newest_run("poem.txt", "gru", root) == first  # by the time last.pt was saved, not by the number
    with pytest.raises(ChargenError) as err:
        newest_run("poem.txt", "rnn", root)
    assert err.value.message == f"nothing to resume: no poem-rnn run under {root}/ holds a last.pt"
    with pytest.raises(ChargenError, match="no story-<cell> run"):
        newest_run("story.txt", None, tmp_path / "missing")


def test_resume_without_out_continues_the_newest_run(tmp_path, corpus_file, make_model_config, make_train_config):
    """train(resume=True) without `out` must pick newest_run's folder, of any cell, and write only there."""
    root = tmp_path / "ckpts"
    train(corpus_file, make_model_config(cell="gru"), make_train_config(max_steps=10), root=root, progress=False)
    lstm = train(corpus_file, make_model_config(cell="lstm"), make_train_config(max_steps=10), root=root,
                 progress=False)
    gru_before = (root / "poem-gru" / "last.pt").read_bytes()
    result = train(corpus_file, make_model_config(cell="gru"), make_train_config(), resume=True, root=root,
                   max_steps=14, progress=False)
    assert result.run_dir == lstm.run_dir == root / "poem-lstm" and result.steps == 14
    assert result.model_config.cell == "lstm"
    assert (root / "poem-gru" / "last.pt").read_bytes() == gru_before


def test_newest_checkpoint_skips_comparison_runs(tmp_path):
    """After `chargen compare`, the newest best.pt is a comparison's: sampling must still take the newest
    training run, also one nested in a folder of its own."""
    root = tmp_path / "checkpoints"
    older = touch_run(root / "poem-gru", 1_000, "best.pt")
    nested = touch_run(root / "mine" / "run1", 2_000, "best.pt")
    assert newest_checkpoint(root) == nested / "best.pt"
    mark_comparison(root / "poem-compare", ["rnn", "gru"])
    touch_run(root / "poem-compare" / "gru", 9_000, "best.pt")
    assert json.loads((root / "poem-compare" / "comparison.json").read_text()) == {"cells": ["rnn", "gru"]}
    assert newest_checkpoint(root) == nested / "best.pt"
    os.utime(older / "best.pt", (3_000, 3_000))
    assert newest_checkpoint(root) == older / "best.pt"
    only = tmp_path / "only"
    mark_comparison(only / "poem-compare", ["gru"])
    touch_run(only / "poem-compare" / "gru", 9_000, "best.pt")
    with pytest.raises(ChargenError, match="no best.pt of a training run found"):
        newest_checkpoint(only)
