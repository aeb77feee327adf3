"""Supernet training: strategies (sandwich, multiarch, poa, progressive, uniform), the
resumable training loop, and subnet evaluation with BN recalibration."""

from nas.training.evaluate import (
    calibration_batches,
    check_data_fits,
    evaluate,
    evaluate_config,
    evaluate_model,
    held_out_split,
    recalibrate_bn,
)
from nas.training.options import OptionError, TrainOptions
from nas.training.strategies import kd_loss, list_strategies, make_strategy, register_strategy
from nas.training.trainer import (
    TrainingDivergedError,
    TrainingError,
    TrainResult,
    load_checkpoint,
    train,
)

__all__ = ["OptionError", "TrainOptions", "TrainResult", "TrainingDivergedError", "TrainingError",
           "calibration_batches", "check_data_fits", "evaluate", "evaluate_config",
           "evaluate_model", "held_out_split", "kd_loss", "list_strategies",
           "load_checkpoint", "make_strategy", "recalibrate_bn", "register_strategy", "train"]
