"""Run folders: clean-up of what a killed run leaves behind, and which folder a run gets."""
from __future__ import annotations

import pytest

from chargen import ChargenError, train
from chargen.training.checkpoint import remove_stale_temp_files
from chargen.training.runs import choose_run_dir


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
    from chargen.training.checkpoint import save_checkpoint

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
    with pytest.raises(ChargenError, match="nothing to resume"):
        choose_run_dir(default, default, resume=True)  # best.pt alone cannot be resumed
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
