"""Training and multi-view evaluation of video models on clip datasets (single process or torchrun)."""
from .config import TrainConfig, parse_views
from .distributed import DistEnv, ShardSampler, setup_distributed
from .engine import CHECKPOINT, TRAIN_STATE, build_model, train
from .evaluate import evaluate, evaluate_checkpoint, summarize
from .pretrained_eval import evaluate_weights

__all__ = ["TrainConfig", "parse_views", "DistEnv", "ShardSampler", "setup_distributed", "CHECKPOINT", "TRAIN_STATE",
           "build_model", "train", "evaluate", "evaluate_checkpoint", "evaluate_weights", "summarize"]
