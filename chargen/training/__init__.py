"""Training: the schedule, one step, the run loop, evaluation, run folders, the device recipes
and torchrun. Model files (checkpoints, model folders) are modelfile/'s; the names re-exported
from it here are kept for older callers."""
from ..config import TrainConfig
from ..modelfile import Checkpoint, load_model, read_checkpoint, read_model, save_checkpoint
from .evaluate import EvalResult, evaluate_carried, evaluate_records, evaluate_windows
from .loop import TrainResult, train
from .recipes import default_configs
from .score import TextScore, score_text

__all__ = ["Checkpoint", "EvalResult", "TrainConfig", "TrainResult", "default_configs", "evaluate_carried",
           "evaluate_records", "evaluate_windows", "load_model", "read_checkpoint", "read_model", "save_checkpoint",
           "train", "TextScore", "score_text"]
