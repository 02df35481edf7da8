"""runs.py: clean-up of what a killed run leaves behind."""
from __future__ import annotations

from chargen import train
from chargen.runs import remove_stale_temp_files


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
