"""The model card (README.md of an exported folder) as a stranger meets it: front matter the Hub
reads, what the model is for and what it risks, and a plain-PyTorch loader that a test runs as
the card shows it. Models: the session's tiny LSTM, and test_kinds' records and bytes runs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from kind_runs import bytes_run_fixture, names_run_fixture, records_run_fixture  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from chargen import ModelConfig, TrainConfig, default_configs, load_model
from chargen.cli import app
from chargen.export import export

ROOT = Path(__file__).parents[2]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1 and result.stdout == "", (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "hint:" in lines[0], result.stderr
    for needle in needles:
        assert needle in lines[0]


def card_of(folder: Path) -> str:
    return (folder / "README.md").read_text(encoding="utf-8")


def front_matter(card: str) -> list[str]:
    assert card.startswith("---\n")
    return card.split("---\n")[1].splitlines()


def fenced(card: str, lang: str) -> str:
    """The first ```lang block of the card, exactly as written."""
    return card.split(f"```{lang}\n", 1)[1].split("\n```", 1)[0]


def run(args: list, cwd: Path) -> str:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env=env, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow  # two Python processes that import torch: about 6 s each
@pytest.mark.parametrize("kind", ["chars", "bytes", "records"])
def test_the_cards_plain_pytorch_loader_as_written_writes_chargens_greedy_text(kind, trained_run, bytes_run,
                                                                              names_run, tmp_path):
    """Guards against a card whose loader does not rebuild the model (a wrong module, gate layout or
    key), reads a bytes model's labels as characters, draws the unknown symbol or runs a records model
    as a stream: the card's python block, run as written beside the folder, prints what
    `chargen sample --temp 0` prints (one record for a records model)."""
    run_path = {"chars": trained_run.best, "bytes": bytes_run, "records": names_run}[kind]
    export(run_path, "safetensors", tmp_path / "m")
    code = fenced(card_of(tmp_path / "m"), "python")
    assert len(code.splitlines()) <= 30 and "import chargen" not in code and "from chargen" not in code
    extra = ["--num-samples", 1] if kind == "records" else []
    expected = run(["-m", "chargen", "sample", "m", "--temp", 0, "--length", 200, *extra], tmp_path)
    got = run(["-c", code], tmp_path)
    assert got == expected and len(set(expected)) >= 3, expected


def test_the_front_matter_has_what_the_hub_reads(trained_run, tmp_path):
    """Guards against a card the Hub files without a licence, task or language: --license and
    --language reach the front matter, with pipeline_tag and library_name beside them."""
    result = invoke("export", trained_run.best, "--out", tmp_path / "m", "--license", "cc-by-4.0",
                    "--language", "en", "--language", "fr")
    assert result.exit_code == 0, result.stderr
    assert front_matter(card_of(tmp_path / "m")) == [
        "library_name: chargen", "license: cc-by-4.0", "language: [en, fr]", "pipeline_tag: text-generation",
        "tags: [chargen, char-rnn, lstm, text-generation]"]
    assert "note:" not in result.stderr and "`cc-by-4.0`." in card_of(tmp_path / "m")


def test_without_license_the_card_says_other_and_the_export_says_how_to_set_it(trained_run, tmp_path):
    """Guards against a licence invented for a corpus whose terms chargen cannot know, and a default the
    person exporting never hears of: `license: other`, no language, and one note with the option."""
    result = invoke("export", trained_run.best, "--out", tmp_path / "m")
    card = card_of(tmp_path / "m")
    assert front_matter(card)[1:3] == ["license: other", "pipeline_tag: text-generation"]
    assert result.stderr.splitlines()[-1] == ("note: the card says license: other (not stated); pass --license ID "
                                              "(mit, cc-by-4.0, ...) if you know the terms of the corpus")
    for heading in ("## Intended use", "## Limitations and risks", "## Licence", "## Use it"):
        assert heading in card
    assert "**Privacy:** a character model can repeat stretches of its training text word for word" in card
    assert "pip install -e path/to/chargen\nchargen sample m --temp 0.8\n" in card


@pytest.mark.parametrize("args, needles", [
    (["--license", "MIT License"], ["--license 'MIT License' is not a licence identifier", "mit, apache-2.0"]),
    (["--language", "English"], ["--language 'English' is not an ISO 639 language code", "en, fr or fi"]),
])
def test_a_bad_licence_or_language_is_one_line_and_writes_nothing(trained_run, tmp_path, args, needles):
    result = invoke("export", trained_run.best, "--out", tmp_path / "m", *args)
    assert_one_line_error(result, *needles)
    assert not (tmp_path / "m").exists()


def test_the_training_command_trains_the_same_model_on_a_gpu(trained_run, tmp_path):
    """Guards against a command that leaves out the settings a device's recipe chooses, so that on a GPU
    it trains an LSTM 3x1024 at batch 128: the card's command, read as the CLI reads it with the GPU
    recipe underneath, gives this run's model and training settings."""
    export(trained_run.best, "safetensors", tmp_path / "m")
    line = next(x for x in card_of(tmp_path / "m").splitlines() if x.startswith("chargen train "))
    words = line.split()[3:]  # after "chargen train poem.txt"
    typed = {**ModelConfig().to_dict(), **TrainConfig().to_dict()}  # each setting's type, as the CLI reads it
    given = {f[2:].replace("-", "_"): v for f, v in zip(words[::2], words[1::2])}
    given = {k: type(typed[k])(v) for k, v in given.items()}
    model_cfg, train_cfg = default_configs(torch.device("cuda"), **given)
    _, _, ckpt = load_model(trained_run.best)
    assert model_cfg.to_dict() == {**ckpt.model_config.to_dict(), "vocab_size": 0}  # the corpus sets vocab_size
    for name in ("batch_size", "seq_len", "lr", "weight_decay", "warmup_steps", "eval_every", "patience",
                 "max_steps", "max_time", "seed"):
        assert getattr(train_cfg, name) == getattr(ckpt.train_config, name), name


def test_a_records_and_a_bytes_card_say_what_they_are(records_run, bytes_run, tmp_path):
    """Guards against a records card that never says what a record is or that --unique exists, and a
    bytes card that calls its byte labels characters or its loss nats per character."""
    export(records_run, "safetensors", tmp_path / "names")
    export(bytes_run, "safetensors", tmp_path / "poem")
    names, poem = card_of(tmp_path / "names"), card_of(tmp_path / "poem")
    assert "This model writes whole records: each is one line of the corpus." in names
    assert "`chargen sample --unique` leaves out records found in the training corpus" in names
    assert "chargen sample names --temp 0.8 --num-samples 5" in names
    assert "A byte-level recurrent network" in poem and "nats/byte" in poem and "nats/char" not in poem
    assert "`vocab` is the 256 byte values in id order, each labelled by the Latin-1 character" in poem
    assert "## Records" not in poem and "--unique" not in poem
