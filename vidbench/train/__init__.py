"""Training and multi-view evaluation of video models on clip datasets (single process or torchrun).
The jobs' options are `TrainConfig` and `EvalConfig`; `core` is the training core both the video
loop and SSL pretraining call."""
from ..distributed import DistEnv, ShardSampler, setup_distributed
from .config import EvalConfig, TrainConfig, TrainingOptions, parse_views
from .core import TrainingCore, param_groups
from .engine import CHECKPOINT, TRAIN_STATE, build_model, train
from .evaluate import evaluate, evaluate_checkpoint, summarize
from .pretrained_eval import evaluate_weights, run_eval

__all__ = ["TrainConfig", "EvalConfig", "TrainingOptions", "TrainingCore", "param_groups", "parse_views", "DistEnv",
           "ShardSampler", "setup_distributed", "CHECKPOINT", "TRAIN_STATE", "build_model", "train", "evaluate",
           "evaluate_checkpoint", "evaluate_weights", "run_eval", "summarize"]
