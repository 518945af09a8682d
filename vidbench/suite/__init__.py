"""Suites: declarative TOML files (vidbench/suites/*.toml) and the runner behind `vidbench run`."""
from .runner import STAGES_TABLE, Stage, finished_stages, plan, run_suite
from .spec import Suite, available_suites, load_suite

__all__ = ["Suite", "Stage", "STAGES_TABLE", "available_suites", "finished_stages", "load_suite", "plan", "run_suite"]
