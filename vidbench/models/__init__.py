"""The vidbench model zoo: every model registered in one registry, on one attention kernel."""
from ._registry import (
    ModelMeta,
    build_config,
    create_model,
    list_models,
    model_entry,
    model_label,
    register_model,
)
from .hiera import Hiera, HieraBlockConfig, HieraConfig
from .mvit import MViT, MViTBlockConfig, MViTConfig
from .swin import Swin3dConfig, SwinBlockConfig, SwinStageConfig, SwinTransformer3d
from .timesformer import TimeSformer, TimeSformerConfig
from .videomae import VideoMAE, VideoMAEConfig
from .videoprism import VideoPrism, VideoPrismConfig
from .vit import FrameAverageConfig, VideoFrameAverage, VisionTransformer, ViTConfig
from .vivit import ViViT, ViViTConfig, ViViTFactorisedEncoder
from .vjepa2 import VJEPA2, VJEPA2Config
from .vtn import VTN, VTNConfig

__all__ = [
    "ModelMeta", "build_config", "create_model", "list_models", "model_entry", "model_label", "register_model",
    "TimeSformer", "TimeSformerConfig", "FrameAverageConfig", "VideoFrameAverage", "VisionTransformer",
    "ViTConfig", "ViViT", "ViViTConfig", "ViViTFactorisedEncoder", "VTN", "VTNConfig", "MViT", "MViTBlockConfig",
    "MViTConfig", "VideoMAE", "VideoMAEConfig", "SwinTransformer3d", "Swin3dConfig", "SwinStageConfig",
    "SwinBlockConfig",
    "VideoPrism", "VideoPrismConfig",
    "Hiera", "HieraBlockConfig", "HieraConfig",
    "VJEPA2", "VJEPA2Config",
]
