"""The settings of a training run, declared once (settings.py), and config.toml, the file that
keeps a run's resolved settings so that the run can be repeated from it (toml.py)."""
from .settings import (GROUPS, MAX_SAMPLE_CHARS, DataConfig, OptimConfig, RunConfig, ScheduleConfig, TrainConfig,
                       check_settings, setting)

__all__ = ["GROUPS", "MAX_SAMPLE_CHARS", "DataConfig", "OptimConfig", "RunConfig", "ScheduleConfig", "TrainConfig",
           "check_settings", "setting"]
