"""The corpus a run reads: prepared once per node (the other ranks open the cache), or a records
corpus read from its one text file. Which data a run trains on is decided here, not in the loop."""
from __future__ import annotations

from typing import Any

from ..data import Corpus, RecordCorpus, Sources, load_corpus, load_records
from ..data.cache import CorpusPaths
from ..data.cache import work_bytes
from ..errors import ChargenError
from ..progress import PrepareBar
from ..config import TrainConfig
from ..modelfile.state import RunState
from .distributed import World, barrier


def load_for_run(corpus_path: CorpusPaths, config: TrainConfig, world: World,
                 progress: bool | None) -> Corpus | RecordCorpus:
    """Prepare the corpus on each node's first rank (rank 0 with a bar in MB/s); the other ranks
    wait for it and then open the cache, instead of all encoding the same file at once. A records
    corpus is read into memory, in one process (Trainer refuses several)."""
    if config.records:
        return load_records(_one_file(corpus_path, config), config.records, config.val_frac, config.val_chars,
                            config.min_char_count,
                            config.max_record_chars)
    corpus = None
    split: dict[str, Any] = dict(min_char_count=config.min_char_count, vocab=config.vocab, val_files=config.val_files)
    if world.local_rank == 0:
        sources = Sources.of(corpus_path)
        with PrepareBar(sources.name, progress if world.is_main else False,
                        size=lambda: work_bytes(sources, config.vocab)) as bar:
            corpus = load_corpus(sources, config.val_frac, config.val_chars, progress=bar.update, **split)
    barrier(world)
    if corpus is None:
        corpus = load_corpus(corpus_path, config.val_frac, config.val_chars, **split)
    return corpus


def run_sources(corpus_path: CorpusPaths, state: RunState) -> Sources:
    """What the run reads: `corpus_path` as Sources, with `state`'s include/exclude patterns (a
    resumed run's own) when it gives none, so that a resume without them reads the same files."""
    sources = Sources.of(corpus_path)
    if sources.include or sources.exclude:
        return sources
    return Sources(sources.paths, state.include, state.exclude)


def changed_note(corpus: Corpus | RecordCorpus, run_chars: int) -> str | None:
    """A warning when a resumed run's corpus no longer has the size it had (`run_chars`, 0 when the
    run did not record it): the same characters, but other text."""
    if not run_chars or corpus.size == run_chars:
        return None
    return (f"warning: the corpus now has {corpus.size:,} characters and the run was trained on {run_chars:,}: "
            "it changed since, and the run goes on with the text as it is now")


def _one_file(corpus_path: CorpusPaths, config: TrainConfig) -> str:
    """The one text file a records corpus is read from; ChargenError for several files or bytes."""
    if config.vocab != "chars":
        raise ChargenError("--records reads text, and --vocab bytes reads bytes", "train records with --vocab chars")
    if config.val_files:
        raise ChargenError("--val-files splits a corpus of several files, and --records validates on whole records",
                           "drop --val-files: about --val-frac of the records validate")
    files = Sources.of(corpus_path).files()
    if len(files) != 1:
        raise ChargenError(f"--records reads one file, and {Sources.of(corpus_path)} is {len(files)} files",
                           "join the records into one file (one per line, or JSON lines)")
    return files[0].path
