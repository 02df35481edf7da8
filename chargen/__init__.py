"""chargen: character-level text generation with RNN, LSTM and GRU models.

The library is importable without the CLI's dependencies (typer, rich). The names below
are its public API; the subpackages (data, model, training, sample, study, export) hold the rest.
"""
from .data import (RECORD_END, Corpus, RecordBatcher, RecordCorpus, Sources, StreamBatcher, Vocab, load_corpus,
                   load_records, prepare_corpus, read_records, read_text)
from .errors import ChargenError
from .export import export as export_model
from .model import CharRNN, ModelConfig
from .sample import RecordSample, SampleConfig, generate, sample_records, sample_texts
from .config import TrainConfig
from .modelfile import Checkpoint, load_model, read_checkpoint, save_checkpoint
from .training import (
                       EvalResult,
                       TrainResult,
                       default_configs,
                       evaluate_carried,
                       evaluate_records,
                       evaluate_windows,
                       train,
)
from .sample import training_records, write_raw, write_records, write_samples
from .training import TextScore, score_text

__all__ = [
    "RECORD_END", "CharRNN", "ChargenError", "Checkpoint", "Corpus", "EvalResult", "ModelConfig", "RecordBatcher",
    "RecordCorpus", "RecordSample", "SampleConfig", "Sources", "StreamBatcher", "TrainConfig", "TrainResult",
    "Vocab", "default_configs", "evaluate_carried", "evaluate_records", "evaluate_windows", "export_model",
    "generate", "load_corpus", "load_model", "load_records", "prepare_corpus", "read_checkpoint", "read_records",
    "read_text", "sample_records", "sample_texts", "save_checkpoint", "train",
    "TextScore", "score_text", "training_records", "write_raw", "write_records", "write_samples"
]
__version__ = "0.1.0"
