"""`chargen train`'s settings: declared once and made into grouped options, written to config.toml,
read back by --config with --set and flags on top; -h and --version."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from chargen import ModelConfig, TrainConfig, __version__
from chargen.cli import app
from chargen.cli.app import COMMANDS
from chargen.config.toml import CONFIG_FILE, read_config_file

runner = CliRunner()
TINY = ["--cell", "gru", "--layers", "1", "--hidden-size", "8", "--embedding-dim", "5", "--batch-size", "3",
        "--seq-len", "12", "--max-steps", "20", "--max-time", "0", "--eval-every", "1", "--save-every", "20",
        "--warmup-steps", "2", "--device", "cpu", "--sample-chars", "0", "--dropout", "0.1", "--seed", "5",
        "--threads", "1"]  # one thread: runs compared bit for bit


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def losses(run: Path) -> list[float]:
    """The training loss of every evaluation record in the run's metrics.jsonl, in order."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r["train_loss"] for r in map(json.loads, lines) if "train_loss" in r]


def assert_error(result, message: str, hint: str) -> None:
    """Exit 1, one line 'error: MESSAGE (hint: HINT)' on stderr, nothing on stdout."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout == "" and result.stderr == f"error: {message} (hint: {hint})\n"


@pytest.fixture
def first_run(tmp_path, corpus_file) -> Path:
    result = invoke("train", corpus_file, *TINY, "--quiet", "--out", tmp_path / "first")
    assert result.exit_code == 0, result.stderr
    return tmp_path / "first"


def test_config_toml_repeats_the_run(first_run, tmp_path):
    """Guards against a run that cannot be repeated from its folder: config.toml holds every resolved
    setting and the corpus, and `chargen train --config` alone gives the same first 20 losses."""
    settings, sources = read_config_file(first_run / CONFIG_FILE)
    assert settings["hidden_size"] == 8 and settings["seed"] == 5 and settings["lr"] == TrainConfig().lr
    assert set(settings) == {f for f in {*ModelConfig.__dataclass_fields__, *TrainConfig.__dataclass_fields__}} - {
        "vocab_size"}
    again = invoke("train", "--config", first_run / CONFIG_FILE, "--quiet", "--out", tmp_path / "again")
    assert again.exit_code == 0, again.stderr
    first = losses(first_run)
    assert len(first) == 20 and losses(tmp_path / "again") == first
    assert (tmp_path / "again" / CONFIG_FILE).read_text() == (first_run / CONFIG_FILE).read_text()


def test_set_and_flags_override_the_file_in_that_order(first_run, tmp_path, monkeypatch):
    """A flag given beats --set, which beats the file; what none gives is the file's, not the recipe's."""
    calls = []

    def fake_train(corpus, model_config, config, **kwargs):
        calls.append((corpus, model_config, config))
        raise SystemExit(0)

    monkeypatch.setattr("chargen.cli.train.run_training", fake_train)
    result = invoke("train", "--config", first_run / CONFIG_FILE, "--set", "lr=0.02", "--set", "optimisation.seed=9",
                    "--set", "cell=lstm", "--seed", "11", "--set", "tensorboard=true")
    assert result.exit_code == 0, result.stderr
    ((corpus, model_config, config),) = calls
    assert (config.lr, config.seed, config.tensorboard, model_config.cell) == (0.02, 11, True, "lstm")
    assert (config.max_steps, config.eval_every, model_config.hidden_size, model_config.dropout) == (20, 1, 8, 0.1)
    assert [Path(p).name for p in corpus.paths] == ["poem.txt"]


@pytest.mark.parametrize("args, message, hint", [
    (["--set", "learning_rate=0.1"], "--set 'learning_rate=0.1' names no setting",
     "write --set KEY=VALUE, KEY one of the flags' names with _ for -: --set lr=0.01"),
    (["--set", "lr=fast"], "--set lr=fast: lr takes a number, got 'fast'", "write it as lr = 0.003"),
    (["--set", "lr=-1"], "lr must be in (0.0, 10.0], got -1.0", "fix --lr"),
])
def test_bad_settings_are_refused_in_one_line(first_run, args, message, hint):
    assert_error(invoke("train", "--config", first_run / CONFIG_FILE, *args), message, hint)


def test_unknown_or_damaged_keys_in_the_file_are_refused(first_run, tmp_path):
    """A config.toml with a misspelt setting, a wrong type or bad TOML is one error line, before any run."""
    text = (first_run / CONFIG_FILE).read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("hidden_size = 8", "hiden_size = 8"))
    assert_error(invoke("train", "--config", bad), f"{bad} has an unknown setting 'hiden_size' in [model]",
                 "[model] takes: cell, num_layers, hidden_size, embedding_dim, dropout, impl")
    bad.write_text(text.replace("hidden_size = 8", 'hidden_size = "8"'))
    assert_error(invoke("train", "--config", bad), f"{bad}: hidden_size takes an integer, got '8'",
                 "write it as hidden_size = 256")
    bad.write_text(text + "\n[training]\nlr = 1\n")
    assert_error(invoke("train", "--config", bad), f"{bad} has an unknown section [training]",
                 "the sections are: corpus, model, optimisation, schedule, data, run")
    bad.write_text("lr = = 1")
    result = invoke("train", "--config", bad)
    assert result.exit_code == 1 and result.stderr.startswith(f"error: cannot read the settings in {bad}: ")


def test_config_and_resume_do_not_mix(first_run):
    assert_error(invoke("train", "--config", first_run / CONFIG_FILE, "--resume", "--out", first_run),
                 "--resume continues with the run's own settings, and --config starts a run from a file",
                 "drop --config to resume, or --resume to start a new run")


def test_train_help_is_grouped_and_readable_at_80_columns():
    """Guards against help squeezed into a narrow column, cut with '…', or typer's internal metavars."""
    result = invoke("train", "-h", env={"COLUMNS": "80", "NO_COLOR": "1"}, terminal_width=80)
    assert result.exit_code == 0
    text = result.stdout
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80 and "…" not in text
    panels = [line.split("─ ")[1].split(" ─")[0] for line in lines if line.startswith("╭─ ")]
    assert panels == ["Arguments", "Options", "Model", "Data", "Optimisation", "Schedule", "Run", "Output"]
    assert "<int>" not in text and "<float>" not in text and "<str>" not in text
    assert "--hidden-size" in text and "INTEGER" in text and "--config" in text and "KEY=VALUE" in text


@pytest.mark.parametrize("name", ["eval", "sample", "gradflow"])
def test_command_help_paragraphs_fill_the_width(name):
    """A docstring's line breaks are not kept: each paragraph wraps at the terminal's width, so no
    line ends early and none runs past 80 columns."""
    result = invoke(name, "-h", env={"COLUMNS": "80", "NO_COLOR": "1"}, terminal_width=80)
    intro = result.stdout.split("╭─")[0].splitlines()[3:]  # the description: after the usage lines
    words = " ".join(intro).split()
    doc = " ".join(dict(COMMANDS)[name].__doc__.split())
    assert " ".join(words) in doc and len(words) > 20
    assert max(map(len, intro)) <= 80
    # every line but a paragraph's last is filled: the next word would not have fitted
    for line, following in zip(intro, intro[1:]):
        if line.strip() and following.strip():
            assert len(line.rstrip()) + 1 + len(following.split()[0]) > 78


@pytest.mark.parametrize("name", [name for name, _ in COMMANDS])
def test_every_command_takes_dash_h(name):
    result = invoke(name, "-h")
    assert result.exit_code == 0 and result.stdout.lstrip().startswith("Usage: ")


def test_version_is_declared_once():
    """`chargen --version` prints the package's version, which pyproject reads from the package."""
    result = invoke("--version")
    assert (result.exit_code, result.stdout) == (0, f"chargen {__version__}\n")
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "chargen.__version__"}


def test_every_flag_is_made_from_a_declared_setting():
    """Guards against a setting written a second time in the CLI: each settings option's help is its field's."""
    command = typer.main.get_command(app).commands["train"]
    helps = {p.name: p.help for p in command.params}
    for name, field in {**ModelConfig.__dataclass_fields__, **TrainConfig.__dataclass_fields__}.items():
        if name != "vocab_size":
            assert helps[name].startswith(field.metadata["help"].replace("[", "\\["))


def test_a_resume_takes_its_budget_from_set_and_names_what_it_ignores(monkeypatch):
    """--set is a way to give a setting like a flag: on --resume a new budget from it is taken, and a
    setting the run keeps its own of is named in the warning, not silently dropped."""
    from chargen import TrainResult

    calls = []

    def fake_train(corpus, model_config, config, **kwargs):
        calls.append(kwargs)
        return TrainResult(Path("runs/x"), 3, 1.5, 0.5, 123, 1000.4, "max_steps", "cpu")

    monkeypatch.setattr("chargen.cli.train.run_training", fake_train)
    result = invoke("train", "poem.txt", "--out", "runs/x", "--resume", "--set", "lr=0.5", "--set", "max_steps=50",
                    "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ("warning: --resume continues with the run's own settings; ignored: --lr (start a new run "
                             "to change them)\n")
    ((kwargs),) = calls
    assert (kwargs["resume"], kwargs["max_steps"], kwargs["more_time"]) == (True, 50, None)
