"""chargen: character-level text generation with RNN, LSTM and GRU models.

The library is importable without the CLI's dependencies (typer, rich). The names below
are its public API; the subpackages (data, model, training, sample, study) hold the rest.
"""
from .data import Corpus, Sources, StreamBatcher, Vocab, load_corpus, prepare_corpus, read_text
from .errors import ChargenError
from .model import CharRNN, ModelConfig
from .sample import SampleConfig, generate, sample_texts
from .training import (
                       Checkpoint,
                       EvalResult,
                       TrainConfig,
                       TrainResult,
                       default_configs,
                       evaluate_carried,
                       evaluate_windows,
                       load_model,
                       read_checkpoint,
                       save_checkpoint,
                       train,
)

__all__ = [
    "CharRNN", "ChargenError", "Checkpoint", "Corpus", "EvalResult", "ModelConfig", "SampleConfig", "Sources",
    "StreamBatcher",
    "TrainConfig", "TrainResult", "Vocab", "default_configs", "evaluate_carried", "evaluate_windows", "generate",
    "load_corpus", "load_model", "prepare_corpus", "read_checkpoint", "read_text", "sample_texts", "save_checkpoint",
    "train",
]
__version__ = "0.1.0"
