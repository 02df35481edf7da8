"""Training: the config and schedule, one step, the run loop, evaluation, checkpoints, run
folders, the device recipes and torchrun."""
from .checkpoint import Checkpoint, load_model, read_checkpoint, save_checkpoint
from .config import TrainConfig
from .evaluate import EvalResult, evaluate_carried, evaluate_records, evaluate_windows
from .loop import TrainResult, train
from .recipes import default_configs

__all__ = ["Checkpoint", "EvalResult", "TrainConfig", "TrainResult", "default_configs", "evaluate_carried",
           "evaluate_records", "evaluate_windows", "load_model", "read_checkpoint", "save_checkpoint", "train"]
