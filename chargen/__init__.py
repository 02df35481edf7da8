"""chargen: character-level text generation with RNN, LSTM and GRU models.

The library is importable without the CLI's dependencies (typer, rich).
"""
from .checkpoint import load_model, read_checkpoint, save_checkpoint
from .config import TrainConfig
from .corpus import StreamBatcher, Vocab, read_text
from .errors import ChargenError
from .evaluate import EvalResult, evaluate_carried, evaluate_windows
from .model import CharRNN, ModelConfig
from .prepare import Corpus, load_corpus, prepare_corpus
from .recipes import default_configs
from .sample import SampleConfig, generate, sample_texts
from .train import TrainResult, train

__all__ = [
    "CharRNN", "ChargenError", "Corpus", "EvalResult", "ModelConfig", "SampleConfig", "StreamBatcher",
    "TrainConfig", "TrainResult", "Vocab", "default_configs", "evaluate_carried", "evaluate_windows", "generate",
    "load_corpus", "load_model", "prepare_corpus", "read_checkpoint", "read_text", "sample_texts", "save_checkpoint", "train",
]
__version__ = "0.1.0"
