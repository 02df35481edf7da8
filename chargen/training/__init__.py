"""Training: the config and schedule, one step, the run loop, evaluation, checkpoints and model
folders, run folders, the device recipes and torchrun."""
from .checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from .config import TrainConfig
from .evaluate import EvalResult, evaluate_carried, evaluate_records, evaluate_windows
from .load import load_model, read_model
from .loop import TrainResult, train
from .recipes import default_configs
from .score import TextScore, score_text

__all__ = ["Checkpoint", "EvalResult", "TrainConfig", "TrainResult", "default_configs", "evaluate_carried",
           "evaluate_records", "evaluate_windows", "load_model", "read_checkpoint", "read_model", "save_checkpoint",
           "train", "TextScore", "score_text"]
