"""vidbench: a benchmarking suite for video transformers."""
from .models import list_models, model_entry
from .version import __version__
from .weights import create_model, load_pretrained

__all__ = ["__version__", "create_model", "list_models", "load_pretrained", "model_entry"]
