"""vidbench's version, on the bottom floor: results record it, setup.cfg reads it, and the package
re-exports it as `vidbench.__version__`."""
__version__ = "0.1.0"
