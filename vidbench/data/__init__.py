"""Video data: decoding (decord / torchcodec / PyAV, or raw JPEG frames), annotation formats
(CSV, mmaction2 lists and rawframes, class folders, Kinetics CSV, SSv2 JSON), clip samplers,
transforms, the clip dataset, and the generated action dataset (default and real-size presets)."""
from .annotations import AnnotationError, AnnotationIssue, LabelMap, VideoRecord, read_annotations
from .build import build_dataset, clip_settings, make_loader
from .dataset import BadItem, ClipBatch, VideoClipDataset, collate_clips
from .presets import PRESETS, make_preset_dataset
from .rawframes import extract_frames
from .sampling import ClipSampler, ClipTooShortError
from .spec import DataSpec
from .synthetic import CLASSES as SYNTHETIC_CLASSES
from .synthetic import make_dataset
from .transforms import ClipTransform
from .videoio import BadVideoError, available_backends, default_backend, open_video, torchcodec_problem, write_mp4

__all__ = [
    "AnnotationError", "AnnotationIssue", "LabelMap", "VideoRecord", "read_annotations", "build_dataset",
    "clip_settings", "make_loader", "BadItem", "ClipBatch", "VideoClipDataset", "collate_clips", "ClipSampler",
    "ClipTooShortError", "DataSpec", "SYNTHETIC_CLASSES", "make_dataset", "ClipTransform", "BadVideoError",
    "available_backends", "default_backend", "open_video", "write_mp4", "PRESETS", "make_preset_dataset",
    "extract_frames", "torchcodec_problem",
]
