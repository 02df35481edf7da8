"""checkpoint.py: the schema, atomic saves, safe loads, older formats, and a distinct error for each kind of
bad file."""
from __future__ import annotations

import errno
import json
import math
import os
import pickle
import random
import re
from pathlib import Path

import pytest
import torch

from chargen import (
    ChargenError,
    CharRNN,
    Checkpoint,
    ModelConfig,
    TrainConfig,
    Vocab,
    load_model,
    read_checkpoint,
    save_checkpoint,
    train,
)
from chargen.data.vocab import UNKNOWN
from chargen.modelfile.checkpoint import FORMAT_VERSION


class Exploit:
    """Unpickling this runs a shell command: what a hostile "checkpoint" would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def tiny_state(cell: str = "gru") -> tuple[dict, CharRNN]:
    vocab = Vocab.from_text("abcdefg")  # V = 8 with the unknown symbol
    torch.manual_seed(3)
    model = CharRNN(ModelConfig(vocab_size=8, cell=cell, num_layers=2, hidden_size=6, embedding_dim=5))
    return {"model_config": model.config.to_dict(), "vocab": list(vocab.chars), "unk": vocab.unk,
            "model": model.state_dict()}, model


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_save_load_gives_identical_logits(tmp_path, cell):
    """A saved and reloaded model must produce bit-identical logits on the CPU, in eval mode."""
    state, model = tiny_state(cell)
    save_checkpoint(state, tmp_path / "m.pt")
    loaded, vocab, ckpt = load_model(tmp_path / "m.pt")
    x = torch.randint(8, (3, 4))
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model.eval()(x)[0])
    assert not loaded.training
    assert vocab.chars == (*"abcdefg", UNKNOWN) and vocab.unk == UNKNOWN and ckpt.format_version == FORMAT_VERSION
    assert all(p.device.type == "cpu" for p in loaded.parameters())


def test_trained_checkpoint_is_self_contained(trained_run):
    """last.pt must load with plain torch.load(weights_only=True) and carry everything a resume needs."""
    ckpt = torch.load(trained_run.last, map_location="cpu", weights_only=True)
    for key in ("format_version", "model_config", "train_config", "vocab", "model", "optimizer", "rng", "step",
                "epoch", "window", "elapsed", "best_val_loss", "evals_since_best", "hidden"):
        assert key in ckpt, key
    assert ckpt["format_version"] == FORMAT_VERSION
    assert ckpt["step"] == 60
    assert ckpt["vocab"] == list(trained_run.vocab.chars)
    assert ModelConfig(**ckpt["model_config"]).vocab_size == len(trained_run.vocab)
    assert ckpt["model_config"]["hidden_size"] == 16 and ckpt["train_config"]["seed"] == 7
    assert isinstance(ckpt["rng"]["cpu"], torch.Tensor) and ckpt["rng"]["cpu"].dtype == torch.uint8
    assert ckpt["optimizer"]["state"] and ckpt["optimizer"]["param_groups"]
    assert ckpt["best_val_loss"] == trained_run.result.best_val_loss
    assert [h.shape for h in ckpt["hidden"]] == [(2, 4, 16), (2, 4, 16)]  # LSTM (h, c), (L, B, H)


@pytest.mark.parametrize("target", ["os.replace", "torch.save"])
def test_failed_save_keeps_old_file_and_no_temp(tmp_path, monkeypatch, target):
    """A full disk during a save must raise ChargenError, keep the old checkpoint byte-identical, leave no temp file."""
    state, _ = tiny_state()
    path = tmp_path / "best.pt"
    save_checkpoint(state, path)
    before = path.read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space) if target == "os.replace" else \
        monkeypatch.setattr(torch, "save", no_space)
    state["model"] = {k: v + 1 for k, v in state["model"].items()}
    with pytest.raises(ChargenError) as err:
        save_checkpoint(state, path)
    assert "No space left on device" in err.value.message and str(path) in err.value.message
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]


def test_interrupted_save_leaves_no_temp(tmp_path, monkeypatch):
    """Ctrl-C in the middle of a save must propagate and still remove the half-written temp file."""
    state, _ = tiny_state()
    save_checkpoint(state, tmp_path / "last.pt")
    before = (tmp_path / "last.pt").read_bytes()

    def interrupted(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(state, tmp_path / "last.pt")
    assert (tmp_path / "last.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def bad_files(tmp_path, trained_run) -> dict:
    real = torch.load(trained_run.last, map_location="cpu", weights_only=True)
    files = {}

    def write(name, data):
        files[name] = tmp_path / f"{name}.pt"
        if isinstance(data, bytes):
            files[name].write_bytes(data)
        elif data is not None:
            torch.save(data, files[name])

    write("missing", None)
    write("empty", b"")
    blob = trained_run.last.read_bytes()
    write("truncated", blob[: len(blob) // 2])
    write("foreign", {"a": 1})
    write("newer", {**real, "format_version": FORMAT_VERSION + 1})
    write("vocab_mismatch", {**real, "vocab": real["vocab"][1:]})  # the last one is the unknown symbol: keep it
    write("weights_mismatch", {**real, "model_config": {**real["model_config"], "hidden_size": 12}})
    write("malicious", {**real, "model": Exploit(tmp_path / "MARKER")})
    return files


EXPECTED = {
    "missing": "not found", "empty": "empty", "truncated": "truncated", "foreign": "not a chargen checkpoint",
    "newer": "newer", "vocab_mismatch": "inconsistent", "weights_mismatch": "do not fit",
    "malicious": "not a valid chargen checkpoint",
}


def test_each_bad_checkpoint_has_its_own_message(tmp_path, trained_run):
    """Missing, empty, truncated, foreign, newer, mismatched and unsafe files must each say what is wrong."""
    messages = {}
    for name, path in bad_files(tmp_path, trained_run).items():
        with pytest.raises(ChargenError) as err:
            load_model(path)
        assert EXPECTED[name] in err.value.message, name
        assert str(path) in err.value.message and err.value.hint, name
        assert "\n" not in err.value.message
        messages[name] = re.sub(r"\(.*\)", "", err.value.message.replace(str(path), "<path>"))
    assert len(set(messages.values())) == len(messages)
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_malicious_pickle_refused_without_running(tmp_path, how):
    """A file whose unpickling would run a command must be refused and the command never run."""
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pt"
    payload = {"format_version": 1, "model_config": {}, "vocab": ["a"], "model": Exploit(marker)}
    if how == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)
    with pytest.raises(ChargenError) as err:
        read_checkpoint(path)
    assert "not a valid chargen checkpoint" in err.value.message
    assert "could run code" in err.value.message
    assert not marker.exists()


def garbage_outcomes(tmp_path, trained_run) -> dict[str, str]:
    """Load random bytes and a text file as checkpoints; map each case to what came out of read_checkpoint."""
    cases = {f"random{seed}": random.Random(seed).randbytes(512) for seed in range(12)}
    cases["corpus"] = trained_run.corpus.read_bytes()  # e.g. `chargen eval poem.txt best.pt`, arguments swapped
    cases["notes"] = b"hello world\n"
    outcomes = {}
    for name, data in cases.items():
        path = tmp_path / f"{name}.pt"
        path.write_bytes(data)
        try:
            read_checkpoint(path)
            outcomes[name] = "accepted"
        except ChargenError as err:
            outcomes[name] = "ChargenError: " + err.message.replace(str(path), "<path>")
        except Exception as err:  # noqa: BLE001 - the point is to see which ones escape
            outcomes[name] = type(err).__name__
    return outcomes


def test_garbage_checkpoint_is_a_chargen_error(tmp_path, trained_run):
    """Random bytes or a text file must give a ChargenError, not a KeyError/IndexError traceback from the unpickler."""
    outcomes = garbage_outcomes(tmp_path, trained_run)
    escaped = {name: out for name, out in outcomes.items() if not out.startswith("ChargenError")}
    assert escaped == {}
    assert all("not a valid chargen checkpoint" in out for out in outcomes.values())


def test_garbage_checkpoint_not_called_unsafe(tmp_path, trained_run):
    """A file that is not a PyTorch file at all must not be reported as holding code that could run."""
    outcomes = garbage_outcomes(tmp_path, trained_run)
    unsafe = sorted(name for name, out in outcomes.items() if "could run code" in out)
    assert unsafe == []


# -- checkpoints written by earlier releases --------------------------------------------------------
# tests/fixtures holds two tiny checkpoints written by chargen 0.1.0 before its package was split
# (format 1: a GRU's best.pt and an LSTM's last.pt, 4 steps on v1-corpus.txt), and the logits that
# release computed from them for a fixed text.

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_format_1_files_load_and_compute_what_they_computed(cell):
    """Guards against a schema or layout change that strands existing checkpoints (the shipped
    model among them): the old files load, gain the unknown symbol U+FFFD (after 'y', their last
    character), and give every known character the logit it had."""
    expected = json.loads((FIXTURES / "v1-expected.json").read_text())[cell]
    assert read_checkpoint(FIXTURES / expected["file"])["format_version"] == 1  # the file itself stays format 1
    model, vocab, ckpt = load_model(FIXTURES / expected["file"])
    assert ckpt.format_version == FORMAT_VERSION == 4 and ckpt.step == expected["step"] == 4
    assert vocab.kind == "chars"  # format 1 and 2 files read characters
    assert ckpt.model_config.cell == cell and ckpt.train_config.batch_size == 3
    assert vocab.unk == UNKNOWN and vocab.chars[-2:] == ("y", UNKNOWN) and len(vocab) == 62
    assert ckpt.model_config.vocab_size == 62 and model.head.out_features == 62
    with torch.no_grad():
        logits, _ = model(vocab.encode(expected["text"])[None])  # (1, T, V)
    known = logits[..., :-1]  # (1, T, 61): the old vocabulary's columns, in its order
    torch.testing.assert_close(known[0, -1], torch.tensor(expected["logits_last"]), atol=1e-5, rtol=1e-5)
    assert known.sum().item() == pytest.approx(expected["logits_sum"], rel=1e-5)
    # the symbol's logit: zero weights and a bias 10 below the smallest, whatever the model read
    assert torch.equal(logits[0, :, -1], (model.head.bias[:-1].min() - 10).expand(logits.shape[1]))
    probs = logits.softmax(-1)  # (1, T, 62): the known characters' probabilities barely move
    torch.testing.assert_close(probs[..., :-1], known.softmax(-1), atol=1e-5, rtol=1e-4)


def test_the_schema_writes_the_keys_format_1_has():
    """Guards against a writer that drifts from the format it claims: what Checkpoint writes has
    the keys of a format 1 file written by the earlier release (format 2 changed what the vocabulary
    holds) plus the fields added since (format 3's vocab_kind, the optional corpus and corpus_chars,
    lineage and credits, format 4's run_state), and reads back equal without gaining a second symbol."""
    old = read_checkpoint(FIXTURES / "v1-lstm-last.pt")
    ckpt = Checkpoint.from_dict(old)
    keys = set(json.loads((FIXTURES / "v1-expected.json").read_text())["lstm"]["keys"])
    assert set(old) == keys
    assert set(ckpt.to_dict()) == keys | {"vocab_kind", "corpus", "corpus_chars", "lineage", "credits", "run_state"}
    assert ckpt.to_dict()["lineage"] == [] and ckpt.to_dict()["credits"] == ""
    assert ckpt.to_dict()["format_version"] == 4 and ckpt.to_dict()["unk"] == UNKNOWN
    assert ckpt.to_dict()["vocab_kind"] == "chars"
    again = Checkpoint.from_dict(ckpt.to_dict())
    assert again.vocab == ckpt.vocab and again.train_config == ckpt.train_config and again.step == 4
    assert all(torch.equal(again.model[k], v) for k, v in ckpt.model.items())
    assert len(old["vocab"]) == 61 and old["unk"] is None  # the dict read from disk is left as it was


def test_a_format_1_last_pt_resumes(tmp_path):
    """Guards against resume reading a field the older writer did not name the same: the trainer
    restores the old run's position, optimizer and carried state, against the corpus prepared now
    (whose vocabulary has the unknown symbol, as the migrated checkpoint's does)."""
    from chargen.data import load_corpus
    from chargen.training.trainer import Trainer

    ckpt = Checkpoint.read(FIXTURES / "v1-lstm-last.pt")
    corpus = load_corpus(FIXTURES / "v1-corpus.txt", ckpt.train_config.val_frac, ckpt.train_config.val_chars,
                         cache=tmp_path / "cache")
    assert corpus.vocab == ckpt.vocab and corpus.vocab.unk == UNKNOWN
    trainer = Trainer(corpus, ckpt.model_config, ckpt.train_config, tmp_path, torch.device("cpu"))
    trainer.restore(ckpt)
    assert (trainer.state.step, trainer.state.window) == (4, ckpt.window) and trainer.state.hidden is not None
    state = trainer.optimizer.state_dict()["state"]
    assert state[0]["step"].item() == 4
    assert [state[i]["exp_avg"].shape[0] for i in (0, 9, 10)] == [62, 62, 62]  # embedding, head weight and bias
    loss, _ = trainer.train_step()
    assert math.isfinite(loss) and trainer.state.step == 5


def v1_state(chars: str, seed: int = 0) -> tuple[dict, CharRNN]:
    """A format 1 dict as the earlier release wrote it (no unknown symbol), with a fake AdamW state
    whose moments are 1 + the parameter, so an inserted row of zeros stands out."""
    torch.manual_seed(seed)
    model = CharRNN(ModelConfig(vocab_size=len(chars), cell="gru", num_layers=1, hidden_size=6, embedding_dim=5))
    weights = model.state_dict()
    moments = {i: {"step": torch.tensor(4.0), "exp_avg": t + 1, "exp_avg_sq": (t + 1) ** 2}
               for i, t in enumerate(weights.values())}
    optimizer = {"state": moments, "param_groups": [{"lr": 1e-3, "params": list(range(len(weights)))}]}
    return {"format_version": 1, "model_config": model.config.to_dict(), "vocab": list(chars), "unk": None,
            "model": weights, "optimizer": optimizer}, model.eval()


def test_format_1_migration_inserts_the_symbol_where_it_sorts():
    """Guards against a migration that appends the row when U+FFFD sorts before an astral character: the
    emoji's id moves up by one and its row with it, so every character keeps its logit and embedding."""
    chars = "ab\U0001f600"  # U+FFFD goes between 'b' and the emoji
    state, old = v1_state(chars)
    ckpt = Checkpoint.from_dict(state)
    vocab, model = ckpt.vocab, ckpt.build_model()
    assert vocab.chars == ("a", "b", UNKNOWN, "\U0001f600") and vocab.unk_id == 2
    text = "ab\U0001f600ba"
    with torch.no_grad():
        want, _ = old(Vocab(tuple(chars)).encode(text)[None])  # (1, T, 3)
        got, _ = model(vocab.encode(text)[None])  # (1, T, 4)
    torch.testing.assert_close(got[..., [0, 1, 3]], want, atol=1e-6, rtol=0)
    emb = state["model"]["embedding.weight"]
    assert torch.equal(model.embedding.weight[[0, 1, 3]], emb)
    torch.testing.assert_close(model.embedding.weight[2], emb.mean(0))  # the mean embedding: "some character"
    assert torch.equal(model.head.weight[2], torch.zeros(6))
    assert model.head.bias[2] == state["model"]["head.bias"].min() - 10
    moments = ckpt.optimizer["state"]
    for pid, width in ((0, 5), (5, 6)):  # embedding (V, E) and head weight (V, H): a zero row at 2
        assert torch.equal(moments[pid]["exp_avg"][2], torch.zeros(width))
        assert torch.equal(moments[pid]["exp_avg"][[0, 1, 3]], state["optimizer"]["state"][pid]["exp_avg"])
    assert moments[6]["exp_avg_sq"].tolist()[2] == 0 and moments[6]["exp_avg_sq"].shape == (4,)
    assert torch.equal(moments[1]["exp_avg"], state["optimizer"]["state"][1]["exp_avg"])  # a recurrent weight


def test_format_1_vocab_that_holds_u_fffd_makes_it_the_symbol():
    """A format 1 model trained on text containing U+FFFD already has its row: the character becomes the
    unknown symbol and nothing is inserted or moved."""
    state, old = v1_state("ab" + UNKNOWN)
    ckpt = Checkpoint.from_dict(state)
    assert ckpt.vocab.chars == ("a", "b", UNKNOWN) and ckpt.vocab.unk == UNKNOWN
    assert all(torch.equal(ckpt.model[k], v) for k, v in state["model"].items())
    assert ckpt.model_config.vocab_size == 3


def test_shipped_model_gains_the_symbol_without_being_rewritten():
    """Guards against migration writing to disk: the shipped format 1 model loads with the symbol
    (an id after every character it knows), and its file is byte for byte as it was."""
    path = Path(__file__).resolve().parents[2] / "checkpoints" / "shakespeare-gru" / "best.pt"
    if not path.exists():
        pytest.skip("the shipped model is not in this checkout")
    before = path.stat()
    model, vocab, _ = load_model(path)
    assert vocab.unk == UNKNOWN and vocab.unk_id == len(vocab) - 1 and model.config.vocab_size == len(vocab)
    assert vocab.decode(vocab.encode("\u201cCaf\u00e9\u201d")) == UNKNOWN + "Caf" + UNKNOWN * 2
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_a_weights_only_file_samples_but_does_not_resume(tmp_path):
    """Guards against a file holding only a model and its vocabulary being treated as a run."""
    full = read_checkpoint(FIXTURES / "v1-gru-best.pt")
    slim = {k: full[k] for k in ("format_version", "model_config", "vocab", "unk", "model")}
    (tmp_path / "run").mkdir()
    save_checkpoint(slim, tmp_path / "run" / "last.pt")
    model, vocab, ckpt = load_model(tmp_path / "run" / "last.pt")
    assert ckpt.train_config is None and ckpt.step == 0 and len(vocab) == model.config.vocab_size
    with pytest.raises(ChargenError, match="holds a model but no training state"):
        train(FIXTURES / "v1-corpus.txt", ModelConfig(), TrainConfig(), out=tmp_path / "run", resume=True)


def test_a_format_3_file_keeps_its_run_state_apart_from_its_settings(trained_run, tmp_path):
    """Guards against stranding the format 3 files (the shipped checkpoints among them), which kept the run's
    history (a budget extension, the corpus as read) inside the flat training settings: they read into the
    settings and a RunState of their own, and a resume from them decays from the same point."""
    new = read_checkpoint(trained_run.best)
    run_state = {**new["run_state"], "extended_at_step": 40, "extended_at_time": 1.5, "extended_from_lr": 0.002}
    old = {k: v for k, v in new.items() if k != "run_state"}
    old.update(format_version=3, train_config={**new["train_config"], **run_state})
    save_checkpoint(old, tmp_path / "v3.pt")  # save_checkpoint writes the current number first: put 3 back
    torch.save({**torch.load(tmp_path / "v3.pt", weights_only=True), "format_version": 3}, tmp_path / "v3.pt")
    ckpt = Checkpoint.read(tmp_path / "v3.pt")
    assert ckpt.train_config == Checkpoint.from_dict(new).train_config
    assert (ckpt.run_state.extended_at_step, ckpt.run_state.extended_from_lr) == (40, 0.002)
    assert ckpt.run_state.corpus == str(trained_run.corpus.resolve()) and ckpt.run_state.include == ()
    assert ckpt.to_dict()["format_version"] == 4 and "corpus" not in ckpt.to_dict()["train_config"]
