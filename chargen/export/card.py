"""The model card (README.md) of an exported model folder: what the model is, how well it did,
the command that trains it again and a sample of its text, with the front matter the Hugging
Face Hub reads. Words only: the numbers come from the checkpoint."""
from __future__ import annotations

import math
import re
import shlex
from dataclasses import fields, replace

from ..data.text import escape_controls
from ..model import CharRNN
from ..sample import SampleConfig, sample_records, sample_texts
from ..config import TrainConfig
from ..modelfile import Checkpoint
from .usage import usage_lines

CARD = "README.md"  # the card's file name in a model folder
CARD_SAMPLE = SampleConfig(length=400, temperature=0.8, seed=1)  # the card's sample: seeded, so it is reproducible
CARD_RECORDS = 10  # a records model's card shows this many records
# The training settings a person would set on the command line; the rest keep their defaults.
COMMAND_FIELDS = ("vocab", "records", "max_record_chars", "val_files", "batch_size", "seq_len", "lr", "max_steps",
                  "max_time", "seed", "min_char_count")
# Settings a device's or --init's recipe chooses when left out (recipes.py): always written, so the
# command trains the same model on a CPU, a GPU or from a base.
RECIPE_FIELDS = ("batch_size", "seq_len", "lr", "weight_decay", "warmup_steps", "eval_every", "patience")
MODES = {"lines": "one line of the corpus", "paragraphs": "one paragraph of the corpus (text between blank lines)"}


def describe(ckpt: Checkpoint, model: CharRNN) -> dict[str, str]:
    """The model's facts as short labelled strings (for the card and the web page)."""
    c = ckpt.model_config
    facts = {"model": f"{c.cell.upper()}, {c.num_layers} layer{'s' * (c.num_layers > 1)} x {c.hidden_size} units, "
                      f"embedding {c.embedding_dim}; {model.num_parameters():,} parameters; "
                      f"{len(ckpt.vocab)}-symbol vocabulary"}
    corpus = ckpt.corpus or "not recorded"
    if ckpt.corpus_chars:
        corpus += f" ({ckpt.corpus_chars:,} {'bytes' if ckpt.vocab.kind == 'bytes' else 'characters'})"
    facts["corpus"] = corpus
    best = ckpt.best_val_loss
    unit = "byte" if ckpt.vocab.kind == "bytes" else "char"
    facts["validation loss"] = (f"{best:.4f} nats/{unit} ({best / math.log(2):.3f} bits/{unit})"
                                if math.isfinite(best) else "not measured")
    if ckpt.step:
        facts["training"] = f"{ckpt.step:,} steps, {ckpt.elapsed / 60:.1f} minutes"
    return facts


def train_command(ckpt: Checkpoint) -> str | None:
    """A `chargen train` command with this model's shape, the settings a recipe would choose and the
    run's other settings that differ from the defaults, or None when the checkpoint kept no training settings."""
    if ckpt.train_config is None:
        return None
    c, t, default = ckpt.model_config, ckpt.train_config, TrainConfig()
    parts = ["chargen train", ckpt.corpus or "CORPUS", f"--cell {c.cell}", f"--num-layers {c.num_layers}",
             f"--hidden-size {c.hidden_size}", f"--embedding-dim {c.embedding_dim}", f"--dropout {c.dropout:g}"]
    if ckpt.lineage:  # the base by the name it was asked for, never a path on the trainer's machine
        parts.insert(2, f"--init {ckpt.lineage[0]['name']}")
    known = {f.name for f in fields(TrainConfig)}
    for name in dict.fromkeys(RECIPE_FIELDS + COMMAND_FIELDS):
        if name in known and (name in RECIPE_FIELDS or getattr(t, name) != getattr(default, name)):
            value = getattr(t, name)
            parts.append(f"--{name.replace('_', '-')} {value:g}" if isinstance(value, float) else
                         f"--{name.replace('_', '-')} {value}")
    for name in ("include", "exclude"):  # the files the run chose: without them it reads others
        parts += [f"--{name} {shlex.quote(p)}" for p in getattr(ckpt.run_state, name)]
    return " ".join(parts)


def model_card(ckpt: Checkpoint, model: CharRNN, title: str, folder_name: str, license: str = "other",
               languages: tuple[str, ...] = ()) -> str:
    """README.md for the model folder named `folder_name`: front matter the Hugging Face Hub reads
    (`license` a Hub licence id; `languages` ISO 639 codes, left out when empty), then the card."""
    facts = describe(ckpt, model)
    sample = card_sample(ckpt, model)
    command = train_command(ckpt)
    front = ["---", "library_name: chargen", f"license: {license}"]
    front += [f"language: [{', '.join(languages)}]"] if languages else []
    front += ["pipeline_tag: text-generation",
              f"tags: [chargen, char-rnn, {ckpt.model_config.cell}, text-generation]", "---"]
    unit = "byte" if ckpt.vocab.kind == "bytes" else "character"
    lines = [*front, "", f"# {title}", "",
             f"A {unit}-level recurrent network trained with chargen on {ckpt.corpus or 'a text corpus'}.", "",
             "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in facts.items()]
    lines += ["", *about_lines(ckpt, license)]
    lines += usage_lines(ckpt, folder_name)
    lines += lineage_lines(ckpt)
    if command:
        lines += ["## Trained with", "", "```", command, "```", ""]
        t = ckpt.train_config
        timed = t is not None and t.max_time and ckpt.step and ckpt.step != t.max_steps
        if timed:  # a time limit: the steps it took depend on the machine
            lines += [(f"The run had a time limit and took {ckpt.step:,} steps; a faster machine takes more steps "
                       f"in that time. To repeat it over the same number of steps, add "
                       f"`--max-steps {ckpt.step} --max-time 0`."), ""]
    fence = "`" * max(3, 1 + max(map(len, re.findall("`+", sample)), default=0))  # longer than any run inside
    lines += [f"## A sample (seed {CARD_SAMPLE.seed}, temperature {CARD_SAMPLE.temperature})", "",
              fence + "text", sample, fence, ""]
    return "\n".join(lines)


def about_lines(ckpt: Checkpoint, license: str) -> list[str]:
    """What the model is for, what a record is (records models), its limits, the privacy warning
    and its licence."""
    mode = ckpt.train_config.records if ckpt.train_config else ""
    lines = ["## Intended use", "",
             ("Generating text in the style of its corpus, for play, study and teaching: how a recurrent "
              "network learns spelling, form and rhythm one symbol at a time. It is not a source of facts, "
              "and it follows no instructions: it continues the text it is given."), ""]
    if mode:
        what = MODES.get(mode, f"the `{mode.split(':', 1)[-1]}` field of one JSON line of the corpus")
        lines += ["## Records", "",
                  (f"This model writes whole records: each is {what}. Every record starts from a zero state "
                   "after the end-of-record symbol (U+001E) and ends where the model draws that symbol again; "
                   "a prime is the beginning of every record."), ""]
    lines += ["## Limitations and risks", "",
              ("- It knows only its corpus: its words, its spelling, its biases. Text outside that style, and "
               "characters it never saw, come out garbled."),
              "- Its text is often plausible and wrong; nothing it writes has been checked.",
              ("- **Privacy:** a character model can repeat stretches of its training text word for word. "
               "Do not share a model trained on private notes, messages or personal data"
               + (": `chargen sample --unique` leaves out records found in the training corpus, but a record "
                  "can still hold parts of several." if mode else ".")), "",
              "## Licence", ""]
    lines += [("Not stated (`license: other`): the weights are derived from the corpus, whose terms apply. "
               "Ask the person who shared this model.") if license == "other" else f"`{license}`.", ""]
    return lines


def lineage_lines(ckpt: Checkpoint) -> list[str]:
    """The card's section on what the model was fine-tuned from (each ancestor's name, weights'
    hash and corpus) and whose text it learned (the credits), or nothing for a model from scratch."""
    if not ckpt.lineage and not ckpt.credits:
        return []
    lines = ["## Fine-tuned from", ""] if ckpt.lineage else ["## Sources", ""]
    for entry in ckpt.lineage:
        corpus = f", trained on {entry['corpus']}" if entry["corpus"] else ""
        lines.append(f"- `{entry['name']}` (weights sha256 `{entry['sha256']}`){corpus}")
    credits = [ckpt.credits] if ckpt.credits else [e["credits"] for e in ckpt.lineage if e["credits"]]
    if credits:
        lines += ["", "What it learned before this corpus comes from: " + " ".join(credits)] if ckpt.lineage \
            else [credits[0]]
    return [*lines, ""]


def card_sample(ckpt: Checkpoint, model: CharRNN) -> str:
    """The card's sample: CARD_SAMPLE's text, or for a records model as many records, one per line;
    control characters (a bytes model may draw any byte) escaped so the card stays text."""
    if ckpt.train_config is not None and ckpt.train_config.records:
        cfg = replace(CARD_SAMPLE, num_samples=CARD_RECORDS, length=CARD_SAMPLE.length // CARD_RECORDS)
        text = "\n".join(sample_records(model, ckpt.vocab, cfg, "cpu").records)
    else:
        text = sample_texts(model, ckpt.vocab, CARD_SAMPLE, "cpu")[0]
    return escape_controls(text)

