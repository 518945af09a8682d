"""vidbench: a benchmarking suite for video transformers."""
__version__ = "0.1.0"

from .models import list_models, model_entry  # noqa: E402
from .weights import create_model, load_pretrained  # noqa: E402

__all__ = ["__version__", "create_model", "list_models", "load_pretrained", "model_entry"]
