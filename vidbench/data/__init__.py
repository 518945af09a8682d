"""Video data: decoding (decord / PyAV), annotation formats, clip samplers, transforms, the clip
dataset, and the generated action dataset."""
from .annotations import AnnotationError, AnnotationIssue, LabelMap, VideoRecord, read_annotations
from .build import build_dataset, clip_settings
from .dataset import BadItem, ClipBatch, VideoClipDataset, collate_clips
from .sampling import ClipSampler, ClipTooShortError
from .spec import DataSpec
from .synthetic import CLASSES as SYNTHETIC_CLASSES
from .synthetic import make_dataset
from .transforms import ClipTransform
from .videoio import BadVideoError, available_backends, default_backend, open_video, write_mp4

__all__ = [
    "AnnotationError", "AnnotationIssue", "LabelMap", "VideoRecord", "read_annotations", "build_dataset",
    "clip_settings", "BadItem", "ClipBatch", "VideoClipDataset", "collate_clips", "ClipSampler",
    "ClipTooShortError", "DataSpec", "SYNTHETIC_CLASSES", "make_dataset", "ClipTransform", "BadVideoError",
    "available_backends", "default_backend", "open_video", "write_mp4",
]
