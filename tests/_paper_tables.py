"""The papers' numbers (tests/paper_tables.json): what the registry must quote and the counts
must reproduce, kept apart from the registry so a test compares two sources, not one with itself."""
import json
from pathlib import Path

PAPER = json.loads((Path(__file__).with_name("paper_tables.json")).read_text())["models"]
