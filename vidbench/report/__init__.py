"""Comparison reports from results directories: tables (tables.py), plots (plots.py),
Markdown + self-contained HTML (render.py). Reads rows; measures nothing."""
from .load import Run, load_run
from .render import SECTIONS, write_report

__all__ = ["Run", "load_run", "write_report", "SECTIONS"]
