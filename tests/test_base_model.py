"""The shipped base model that `--init base` starts from: plain, small, credited, and a start that
fine-tunes on any text and passes its credits on."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from chargen import SampleConfig, load_model, sample_texts
from chargen.cli import app

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "checkpoints" / "base-gru" / "best.pt"
FINETUNE = ROOT / "corpora" / "finetune"
WORDS = FINETUNE / "words.txt"
runner = CliRunner()


def test_base_is_plain_small_and_credited():
    """Under 20 MB, readable with weights_only, no optimizer state, no path of the machine that trained
    it, and credits naming every source's licence."""
    assert BASE.stat().st_size < 20 * 1024 * 1024
    state = torch.load(BASE, map_location="cpu", weights_only=True)
    assert state["optimizer"] is None and state["vocab_kind"] == "bytes"
    assert state["train_config"]["corpus"] == "" and "/" not in state["corpus"]
    for licence in ("public domain", "PSF License", "GPL-3.0+", "GPL-2", "BSD"):
        assert licence in state["credits"]
    assert state["lineage"] == []


def test_base_writes_real_words():
    """A seeded sample of the base is mostly words of the word list (English dominates its mix)."""
    model, vocab, _ = load_model(BASE)
    text = sample_texts(model, vocab, SampleConfig(length=3000, temperature=0.8, seed=1))[0]
    words = {w.strip().lower() for w in WORDS.read_text(encoding="utf-8").splitlines()}
    found = re.findall(r"[A-Za-z]+", text)
    assert len(found) > 200
    assert sum(w.lower() in words for w in found) / len(found) > 0.6


def test_fine_tune_from_base_by_name_credits_its_sources(tmp_path):
    """`--init base` on a small file: a bytes run of the base's shape whose exported card names the base,
    its weights' hash, and what it learned from."""
    corpus = tmp_path / "notes.txt"
    corpus.write_text("Ein Gedicht über Bäume, Äpfel und Öfen.\n" * 80, encoding="utf-8")
    result = runner.invoke(app, ["train", str(corpus), "--init", "base", "--max-steps", "3", "--max-time", "0",
                                 "--batch-size", "4", "--seq-len", "32", "--device", "cpu", "--out",
                                 str(tmp_path / "run"), "--json", "--sample-chars", "0"])
    assert result.exit_code == 0, result.stderr
    assert "starting from base" in result.stderr and "no new characters" in result.stderr
    _, vocab, ckpt = load_model(tmp_path / "run" / "best.pt")
    assert vocab.kind == "bytes" and ckpt.lineage[0]["name"] == "base"
    folder = tmp_path / "shared"
    assert runner.invoke(app, ["export", str(tmp_path / "run" / "best.pt"), "--out", str(folder)]).exit_code == 0
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "`base`" in card and ckpt.lineage[0]["sha256"] in card and "King James Bible" in card
    assert json.loads((folder / "config.json").read_text())["fine_tuned_from"][0]["name"] == "base"


@pytest.mark.parametrize("name", ["verse_hopkins.txt", "prose_devils_dictionary.txt",
                                  pytest.param("code_bottle.py", marks=pytest.mark.slow)])  # 181 KB: about 15 s
def test_base_scores_unseen_text_as_documented(name):
    """The base's loss on the fine-tuning corpora (none of them in its mix), as checkpoints/README.md
    gives it: nats per byte, state carried over the whole file."""
    documented = {"verse_hopkins.txt": 1.9313, "prose_devils_dictionary.txt": 1.6951, "code_bottle.py": 1.3309}
    result = runner.invoke(app, ["eval", str(BASE), str(FINETUNE / name), "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["loss"] == pytest.approx(documented[name], abs=2e-4)
