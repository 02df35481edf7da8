"""compare_cells: the same corpus, seed and budget for each cell, one run folder each, a sample each."""
from __future__ import annotations

import math

import pytest

from chargen.errors import ChargenError
from chargen.model.charrnn import ModelConfig
from chargen.study.compare import compare_cells, parse_cells
from chargen.modelfile.checkpoint import read_checkpoint
from chargen.config import TrainConfig

POEM = "The rain in spring falls soft and thin,\nthe wind comes round to let it in.\n"
TINY = ModelConfig(cell="gru", num_layers=1, hidden_size=8, embedding_dim=4, dropout=0.0)
BUDGET = TrainConfig(batch_size=4, seq_len=16, max_steps=20, max_time=0, eval_every=10, device="cpu", patience=0)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    corpus = root / "poem.txt"
    corpus.write_text(POEM * 20, encoding="utf-8")
    cells = ["lstm", "rnn", "gru"]  # not alphabetical and not rnn-first: order must be the caller's
    return root, cells, compare_cells(corpus, cells, TINY, BUDGET, root / "runs", sample_length=37)


def test_results_come_back_in_the_given_order_with_one_run_folder_each(compared):
    root, cells, results = compared
    assert [r.cell for r in results] == cells
    for r in results:
        assert r.run_dir == root / "runs" / r.cell
        assert (r.run_dir / "best.pt").is_file()
        ckpt = read_checkpoint(r.run_dir / "last.pt")
        assert ckpt["model_config"]["cell"] == r.cell  # the cell really was swapped in, nothing else
        assert ckpt["model_config"]["hidden_size"] == 8 and ckpt["train_config"]["seed"] == BUDGET.seed
        assert ckpt["step"] == 20


def test_every_cell_gets_the_same_budget_and_a_finite_score(compared):
    _, _, results = compared
    for r in results:
        assert math.isfinite(r.best_val_loss)
        assert r.best_val_bpc == pytest.approx(r.best_val_loss / math.log(2))
        assert r.chars_per_s > 0 and r.elapsed > 0


def test_parameter_counts_follow_the_gate_count(compared):
    """Same sizes: an RNN has 1 set of weights, a GRU 3, an LSTM 4, so rnn < gru < lstm."""
    _, _, results = compared
    p = {r.cell: r.parameters for r in results}
    assert p["rnn"] < p["gru"] < p["lstm"]
    # Each gate set adds the same recurrent block: (E + H + 2) * H weights and biases.
    gate = (4 + 8 + 2) * 8
    assert p["gru"] - p["rnn"] == 2 * gate and p["lstm"] - p["gru"] == gate
    # Counted from the architecture, E = 4, H = 8: embedding V x E, one rnn gate set, head H x V + V.
    V = len(read_checkpoint(results[0].run_dir / "best.pt")["vocab"])
    assert V >= len(set(POEM))
    assert p["rnn"] == V * 4 + gate + (8 * V + V)


def test_each_sample_has_the_requested_length_from_the_corpus_alphabet(compared):
    _, _, results = compared
    for r in results:
        assert len(r.sample) == 37
        assert set(r.sample) <= set(POEM)


@pytest.mark.parametrize("cells, message", [
    ([], "no cells"),
    (["gru", "transformer"], "unknown cell 'transformer'"),
    (["lstm", "gru", "lstm"], "'lstm' is listed twice"),
])
def test_bad_cell_lists_are_refused(cells, message):
    with pytest.raises(ChargenError, match=message):
        parse_cells(cells)


def test_bad_cells_and_a_taken_folder_are_refused_before_any_training(tmp_path):
    """A typo in the last cell must not cost the user the first cells' training time."""
    corpus = tmp_path / "poem.txt"
    corpus.write_text(POEM * 20, encoding="utf-8")
    with pytest.raises(ChargenError, match="unknown cell 'gur'"):
        compare_cells(corpus, ["rnn", "gur"], TINY, BUDGET, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    (tmp_path / "runs" / "gru").mkdir(parents=True)
    (tmp_path / "runs" / "gru" / "best.pt").write_bytes(b"")
    with pytest.raises(ChargenError, match="already holds a run"):
        compare_cells(corpus, ["rnn", "gru"], TINY, BUDGET, tmp_path / "runs")
    assert not (tmp_path / "runs" / "rnn").exists()


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers, hidden, embedding, vocab", [(1, 6, 5, 7), (3, 9, 4, 30), (2, 1, 1, 1)])
def test_count_parameters_equals_the_built_model(cell, layers, hidden, embedding, vocab):
    """--equal-params sizes models by this count: it must be CharRNN's own, for every cell and depth."""
    from chargen.model.charrnn import CharRNN
    from chargen.study.compare import count_parameters

    cfg = ModelConfig(vocab_size=vocab, cell=cell, num_layers=layers, hidden_size=hidden, embedding_dim=embedding)
    assert count_parameters(cfg) == CharRNN(cfg).num_parameters()


def test_equal_params_gives_each_cell_its_own_hidden_size():
    """The paper's protocol: about N parameters each, so the cheap RNN gets the widest layer."""
    from chargen.study.compare import cell_models, count_parameters

    models = cell_models(["rnn", "gru", "lstm"], ModelConfig(num_layers=2, embedding_dim=32), 65, 150_000)
    assert [m.hidden_size for m in models] == [206, 119, 103]
    for m in models:
        assert abs(count_parameters(m) - 150_000) <= 0.01 * 150_000
    with pytest.raises(ChargenError, match="no rnn of 2 layers with embedding 32 has about 100 parameters"):
        cell_models(["rnn"], ModelConfig(num_layers=2, embedding_dim=32), 65, 100)
    with pytest.raises(ChargenError, match="--equal-params must be 0 \\(off\\) or a parameter count, got -5"):
        cell_models(["rnn"], ModelConfig(), 65, -5)


@pytest.mark.parametrize("budget, want", [
    ("steps", {"max_steps": 500, "max_time": 0.0, "patience": 0}),
    ("time", {"max_steps": 0, "max_time": 30.0, "patience": 0}),
    ("converge", {"max_steps": 500, "max_time": 0.0, "patience": 4}),
])
def test_budget_config_sets_only_the_protocols_limits(budget, want):
    from chargen.study.compare import budget_config

    got = budget_config(BUDGET, budget, max_steps=500, max_time=30.0, patience=4)
    assert {k: getattr(got, k) for k in want} == want and got.batch_size == BUDGET.batch_size


@pytest.mark.parametrize("args, message", [
    (("minutes", 10, 0.0, 3), "unknown budget 'minutes'"),
    (("time", 10, 0.0, 3), "--budget time needs a positive --max-time"),
    (("converge", 10, 5.0, 0), "--budget converge needs a positive --patience"),
    (("steps", 0, 5.0, 3), "--budget steps needs a positive --max-steps"),
])
def test_bad_budgets_are_refused(args, message):
    from chargen.study.compare import budget_config

    with pytest.raises(ChargenError, match=message):
        budget_config(BUDGET, *args)
