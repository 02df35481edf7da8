"""Starting a run from a trained model (--init): the vocabulary fitted to the corpus, rows kept and
added, the base never written, lineage through resume and export, and every bad input refused."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import model_config, train_config
from typer.testing import CliRunner

import chargen
from chargen import ModelConfig, Vocab, load_model, train
from chargen.cli import app
from chargen.data.renumber import id_table
from chargen.training.init import fitted_vocab, new_char_bias, resolve_init, start_from, weights_sha256
from chargen.modelfile.load import read_model

runner = CliRunner()
BASE_TEXT = "abc abd abe cab bad dab\n" * 60  # 8 distinct characters
NEW_TEXT = "xyz abc zyx bad\n" * 60  # adds x, y and z


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def file_sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A tiny GRU trained on BASE_TEXT: the model fine-tunes start from."""
    folder = tmp_path_factory.mktemp("base")
    corpus = folder / "base.txt"
    corpus.write_text(BASE_TEXT, encoding="utf-8")
    train(corpus, model_config(cell="gru", num_layers=1, hidden_size=12, embedding_dim=6),
          train_config(max_steps=40, lr=2e-2), out=folder / "run", progress=False)
    return folder / "run" / "best.pt"


@pytest.fixture
def new_corpus(tmp_path) -> Path:
    path = tmp_path / "new.txt"
    path.write_text(NEW_TEXT, encoding="utf-8")
    return path


def test_fitted_vocab_adds_only_the_missing_characters():
    base = Vocab.from_text("abc")
    vocab, new = fitted_vocab(base, Vocab.from_text("cxa"))
    assert new == ("x",)
    assert vocab.chars == ("a", "b", "c", "x", "\ufffd") and vocab.unk == "\ufffd"
    assert fitted_vocab(Vocab.for_bytes(), Vocab.for_bytes()) == (Vocab.for_bytes(), ())


def test_known_rows_are_kept_and_new_rows_are_harmless(base):
    """Every character the base knows keeps its embedding and head rows exactly (renumbered); a new one
    gets the mean embedding, a zero head row and a finite bias."""
    ckpt = read_model(base)
    corpus_vocab = Vocab.from_text(NEW_TEXT)
    start = start_from(base, ckpt, corpus_vocab, {"x": 60, "y": 60, "z": 120, "a": 180})
    assert start.new_chars == ("x", "y", "z")
    assert start.model_config.vocab_size == len(start.vocab) == len(ckpt.vocab) + 3
    old = ckpt.model
    for c in ckpt.vocab.chars:
        i, j = ckpt.vocab.chars.index(c), start.vocab.chars.index(c)
        for key in ("embedding.weight", "head.weight", "head.bias"):
            assert torch.equal(start.weights[key][j], old[key][i])
    for c in start.new_chars:
        j = start.vocab.chars.index(c)
        assert torch.allclose(start.weights["embedding.weight"][j], old["embedding.weight"].mean(0))
        assert torch.count_nonzero(start.weights["head.weight"][j]) == 0
        assert math.isfinite(start.weights["head.bias"][j].item())
    # z is twice as frequent as x in the corpus: its first bias is log 2 higher.
    bias = {c: start.weights["head.bias"][start.vocab.chars.index(c)].item() for c in "xz"}
    assert bias["z"] - bias["x"] == pytest.approx(math.log(2), abs=1e-5)
    # The recurrent weights are the base's.
    assert all(torch.equal(start.weights[k], v) for k, v in old.items() if not k.startswith(("embedding", "head")))


def test_known_characters_keep_their_logits(base):
    """Before any step, the fine-tune's model scores known text with the base's logits, the new
    characters' logits being their biases alone."""
    ckpt = read_model(base)
    start = start_from(base, ckpt, Vocab.from_text(NEW_TEXT), {"x": 1})
    before = ckpt.build_model()
    after = chargen.CharRNN(start.model_config)
    after.load_state_dict(start.weights)
    after.eval()
    x = ckpt.vocab.encode("abc dab")[None]  # (1, T)
    logits_before, _ = before(x)
    logits_after, _ = after(start.vocab.encode("abc dab")[None])
    keep = torch.tensor([start.vocab.chars.index(c) for c in ckpt.vocab.chars])
    assert torch.allclose(logits_after[..., keep], logits_before, atol=1e-6)


def test_new_char_bias_follows_frequency_on_the_base_scale():
    vocab = Vocab.from_text("ab")
    bias = torch.tensor([1.0, 0.0, -5.0])  # a, b, U+FFFD
    out = new_char_bias(vocab, bias, {"a": 50, "b": 50, "x": 5}, ("x",))
    # a and b: bias - log(1/2.1 share)... the median offset puts x at log(5/105) on the same scale
    offset = sorted([1.0 - math.log(50 / 105), 0.0 - math.log(50 / 105)])
    assert out.item() == pytest.approx(sum(offset) / 2 + math.log(5 / 105), abs=1e-5)
    assert new_char_bias(vocab, bias, {}, ("x",)).item() == pytest.approx(0.0 - math.log(10))


def test_id_table_maps_a_corpus_into_the_model_numbering():
    table = id_table(Vocab.from_text("ba"), Vocab.from_text("abc"))
    assert table.tolist() == [0, 1, 3]  # a, b, U+FFFD
    with pytest.raises(chargen.ChargenError, match="missing"):
        id_table(Vocab.from_text("xa"), Vocab.from_text("ab"))


def test_cli_fine_tune_learns_new_characters_and_leaves_the_base_alone(base, new_corpus, tmp_path):
    """A run from the base on text with new characters: its model writes them (greedy text holds x,
    y and z), its validation loss beats the untrained start, and the base file is byte-identical."""
    before = file_sha(base)
    out = tmp_path / "ft"
    result = invoke("train", new_corpus, "--init", base, "--max-steps", 60, "--max-time", 0, "--batch-size", 4,
                    "--seq-len", 16, "--lr", 2e-2, "--eval-every", 20, "--device", "cpu", "--json",
                    "--out", out, "--sample-chars", 0)
    assert result.exit_code == 0, result.stderr
    assert "starting from run/best.pt" in result.stderr and "3 new characters: 'x', 'y', 'z'" in result.stderr
    assert file_sha(base) == before
    model, vocab, ckpt = load_model(out / "best.pt")
    assert ckpt.model_config.cell == "gru" and ckpt.model_config.hidden_size == 12  # the base's shape
    assert set("xyz") <= set(vocab.chars)
    (greedy,) = chargen.sample_texts(model, vocab, chargen.SampleConfig(length=60, temperature=0.0, prime="xyz "))
    assert {"x", "y", "z"} <= set(greedy[4:])
    assert ckpt.lineage[0]["name"] == "run/best.pt"
    assert ckpt.lineage[0]["sha256"] == weights_sha256(read_model(base).model)
    assert ckpt.train_config.init == str(base) and ckpt.train_config.lr == 2e-2


def test_fine_tune_starts_where_the_base_is(base, tmp_path):
    """On the base's own text, a fine-tune's first evaluation is far better than a run from scratch's:
    the weights really carried over."""
    corpus = tmp_path / "same.txt"
    corpus.write_text(BASE_TEXT, encoding="utf-8")
    cfg = train_config(max_steps=1, eval_every=1, lr=1e-4, warmup_steps=1)
    tuned = train(corpus, model_config(cell="gru", num_layers=1, hidden_size=12, embedding_dim=6), cfg,
                  out=tmp_path / "a", progress=False, init=base)
    scratch = train(corpus, model_config(cell="gru", num_layers=1, hidden_size=12, embedding_dim=6), cfg,
                    out=tmp_path / "b", progress=False)
    assert tuned.best_val_loss < 0.6 * scratch.best_val_loss
    assert tuned.model_config.vocab_size == read_model(base).model_config.vocab_size  # nothing new


def test_resumed_fine_tune_stays_one(base, new_corpus, tmp_path):
    out = tmp_path / "ft"
    cfg = train_config(max_steps=10, eval_every=5)
    train(new_corpus, model_config(), cfg, out=out, progress=False, init=str(base))
    first = read_model(out / "last.pt")
    result = train(new_corpus, model_config(), cfg, out=out, resume=True, max_steps=20, progress=False)
    assert result.steps == 20
    after = read_model(out / "last.pt")
    assert after.lineage == first.lineage and after.lineage[0]["sha256"] == weights_sha256(read_model(base).model)
    assert after.vocab == first.vocab and after.train_config.init == str(base)


def test_lineage_survives_export(base, new_corpus, tmp_path):
    """The folder's config.json, its card and `chargen info` name the base and its weights' hash; a
    fine-tune of the exported folder carries both ancestors."""
    out = tmp_path / "ft"
    train(new_corpus, model_config(), train_config(max_steps=5, eval_every=5), out=out, progress=False,
          init=str(base))
    folder = tmp_path / "shared"
    assert invoke("export", out / "best.pt", "--format", "safetensors", "--out", folder).exit_code == 0
    config = json.loads((folder / "config.json").read_text())
    sha = weights_sha256(read_model(base).model)
    assert config["fine_tuned_from"][0]["sha256"] == sha and config["fine_tuned_from"][0]["name"] == "run/best.pt"
    card = (folder / "README.md").read_text()
    assert "## Fine-tuned from" in card and sha in card and "--init run/best.pt" in card
    info = invoke("info", folder, "--json")
    assert json.loads(info.stdout)["fine_tuned_from"] == f"run/best.pt (sha256 {sha[:12]})"
    # The exported weights hash as the checkpoint's did: the hash is of the content, not the file.
    assert weights_sha256(read_model(folder).model) == weights_sha256(read_model(out / "best.pt").model)
    again = tmp_path / "ft2"
    train(new_corpus, model_config(), train_config(max_steps=2, eval_every=2), out=again, progress=False,
          init=str(folder))
    names = [e["name"] for e in read_model(again / "best.pt").lineage]
    assert names == ["shared", "run/best.pt"]


def test_records_fine_tune_adds_the_end_symbol(base, tmp_path):
    corpus = tmp_path / "names.txt"
    corpus.write_text("abc\ncab\nbad\ndab\nabe\n" * 20, encoding="utf-8")
    out = tmp_path / "rec"
    train(corpus, model_config(), train_config(max_steps=5, eval_every=5, records="lines"), out=out,
          progress=False, init=str(base))
    vocab = read_model(out / "best.pt").vocab
    assert chargen.RECORD_END in vocab.chars and chargen.RECORD_END not in read_model(base).vocab.chars


def test_bytes_base_fine_tunes_any_file_without_a_new_row(tmp_path):
    corpus = tmp_path / "a.txt"
    corpus.write_text("plain text\n" * 50, encoding="utf-8")
    train(corpus, model_config(cell="rnn", num_layers=1), train_config(max_steps=5, vocab="bytes"),
          out=tmp_path / "b", progress=False)
    other = tmp_path / "c.bin"
    other.write_bytes(bytes(range(256)) * 8)
    train(other, model_config(), train_config(max_steps=5), out=tmp_path / "ft", progress=False,
          init=str(tmp_path / "b" / "best.pt"))
    ckpt = read_model(tmp_path / "ft" / "best.pt")
    assert ckpt.vocab.kind == "bytes" and ckpt.model_config.vocab_size == 256 and ckpt.model_config.cell == "rnn"


def assert_one_line_error(result, *needles):
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "hint:" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize("extra, needles", [
    (["--cell", "lstm"], ["--cell lstm contradicts the --init model", "leave out --cell"]),
    (["--hidden-size", "64"], ["--hidden-size 64 contradicts", "hidden_size is 12"]),
    (["--vocab", "bytes"], ["--vocab bytes contradicts the --init model, which reads chars"]),
])
def test_conflicting_flags_are_refused(base, new_corpus, tmp_path, extra, needles):
    before = file_sha(base)
    result = invoke("train", new_corpus, "--init", base, *extra, "--out", tmp_path / "x", "--device", "cpu")
    assert_one_line_error(result, *needles)
    assert not (tmp_path / "x").exists() and file_sha(base) == before


def test_matching_shape_flags_are_accepted(base, new_corpus, tmp_path):
    result = invoke("train", new_corpus, "--init", base, "--cell", "gru", "--hidden-size", 12, "--max-steps", 2,
                    "--batch-size", 4, "--seq-len", 8,
                    "--max-time", 0, "--out", tmp_path / "x", "--device", "cpu", "-q")
    assert result.exit_code == 0, result.stderr


def test_init_naming_nothing_or_a_damaged_file(tmp_path, new_corpus):
    assert_one_line_error(invoke("train", new_corpus, "--init", "no-such-model", "--device", "cpu"),
                          "no such file, folder or shipped model", "base, shakespeare")
    damaged = tmp_path / "bad.pt"
    damaged.write_bytes(b"not a checkpoint at all")
    assert_one_line_error(invoke("train", new_corpus, "--init", damaged, "--device", "cpu"),
                          "not a valid chargen checkpoint")
    assert damaged.read_bytes() == b"not a checkpoint at all"


def test_bytes_base_with_records_is_refused(tmp_path):
    corpus = tmp_path / "a.txt"
    corpus.write_text("plain text\n" * 50, encoding="utf-8")
    train(corpus, model_config(num_layers=1), train_config(max_steps=2, vocab="bytes"), out=tmp_path / "b",
          progress=False)
    result = invoke("train", corpus, "--init", tmp_path / "b" / "best.pt", "--records", "lines", "--device", "cpu")
    assert_one_line_error(result, "--records reads text, and the --init model reads bytes")


def test_a_corpus_mostly_unknown_to_the_base_is_refused(base, tmp_path):
    corpus = tmp_path / "wide.txt"
    corpus.write_text("".join(chr(0x4E00 + i) for i in range(40)) * 5, encoding="utf-8")
    result = invoke("train", corpus, "--init", base, "--device", "cpu")
    assert_one_line_error(result, "40 characters the --init model never saw", "from a bytes model")


def test_shipped_names_resolve_to_the_repository_models():
    assert resolve_init("shakespeare").name == "best.pt"
    assert resolve_init("shakespeare").parent.name == "shakespeare-gru"


def test_init_reaches_the_config_and_the_recipe(base):
    """--init sets TrainConfig.init, the shape comes from the base, and the fine-tuning recipe fills what
    was left out (an explicit flag still wins)."""
    from chargen.training.recipes import FINETUNE, default_configs

    model, config = default_configs(torch.device("cpu"), init=str(base), lr=5e-4)
    assert config.init == str(base) and config.lr == 5e-4
    assert (config.warmup_steps, config.eval_every, config.patience) == \
        (FINETUNE["warmup_steps"], FINETUNE["eval_every"], FINETUNE["patience"])
    assert model.dropout == FINETUNE["dropout"]
    assert (model.cell, model.num_layers, model.hidden_size, model.embedding_dim) == ("gru", 1, 12, 6)
    assert isinstance(model, ModelConfig)


@pytest.mark.slow
def test_torchrun_fine_tune_trains_like_one_process(base, new_corpus, tmp_path):
    """Every rank starts from the same fitted weights: 2 ranks x 2 streams end like 1 process x 4."""
    import os
    import subprocess
    import sys

    args = ["--init", base, "--dropout", "0", "--batch-size", "4", "--seq-len", "10", "--max-steps", "6",
            "--max-time", "0", "--eval-every", "3", "--device", "cpu", "--precision", "fp32", "--json"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "chargen",
           "train", str(new_corpus), *map(str, args), "--out", str(tmp_path / "ddp")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    one = invoke("train", new_corpus, *args, "--out", tmp_path / "one")
    assert one.exit_code == 0, one.stderr
    ddp, single = read_model(tmp_path / "ddp" / "last.pt"), read_model(tmp_path / "one" / "last.pt")
    assert ddp.lineage == single.lineage and ddp.vocab == single.vocab
    for name, tensor in single.model.items():
        torch.testing.assert_close(ddp.model[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def test_folder_fine_tune_reads_every_file_with_its_patterns(base, tmp_path):
    """A folder corpus with --include: the fine-tune reads the matching files only, its new characters
    come from them, and a resume keeps both the patterns and the lineage."""
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("abc xyz\n" * 40, encoding="utf-8")
    (folder / "b.md").write_text("cab zyx\n" * 40, encoding="utf-8")
    (folder / "c.txt").write_text("QQQQ\n" * 40, encoding="utf-8")
    out = tmp_path / "run"
    args = ["train", folder, "--include", "*.md", "--init", base, "--batch-size", 2, "--seq-len", 8,
            "--max-time", 0, "--device", "cpu", "--out", out, "-q"]
    assert invoke(*args, "--max-steps", 4).exit_code == 0
    first = read_model(out / "last.pt")
    assert "Q" not in first.vocab.chars and {"x", "y", "z"} <= set(first.vocab.chars)
    assert first.run_state.include == ("*.md",)
    resumed = invoke("train", folder, "--resume", "--out", out, "--max-steps", 6, "-q")
    assert resumed.exit_code == 0, resumed.stderr
    after = read_model(out / "last.pt")
    assert after.step == 6 and after.lineage == first.lineage and after.vocab == first.vocab
