"""Short text tables of a run's rows, printed at the end of `vidbench bench` (also by rank 0 of a
multi-process bench) and `vidbench compare`; the CSV holds everything, `vidbench report` draws it."""
from __future__ import annotations

from typing import Any, Dict, Sequence

__all__ = ["cell", "status_cell", "summary", "text_table"]


def cell(value: Any, spec: str) -> str:
    """`value` formatted with `spec`; "-" for None and NaN. An integer spec takes a whole float (a
    count read back from a CSV, or measured as a float, as 8.0)."""
    if value is None or value != value:  # NaN != NaN
        return "-"
    if spec.endswith("d") and isinstance(value, float) and value.is_integer():
        value = int(value)
    return format(value, spec)


def status_cell(row: Dict[str, Any]) -> str:
    """"ok", or the status and the start of its error."""
    return row["status"] if row["status"] == "ok" else f"{row['status']}: {str(row['error'])[:60]}"


def text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns, two spaces apart, as wide as their widest cell."""
    table = [tuple(header), *rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)


def summary(rows: Sequence[Dict[str, Any]]) -> str:
    """A short text table of a bench run's rows (the CSV holds everything)."""
    header = ("model", "T", "img", "batch", "prec", "mode", "GMACs", "clips/s", "step ms", "iqr ms", "peak MiB",
              "MFU %", "status")
    return text_table(header, [
        (r["model"], cell(r["frames"], "d") if r["frames"] is not None else "-", str(r["img_size"]),
         str(r["batch_size"]), r["precision"], r["mode"], cell(r["gmacs"], ".3f"), cell(r["clips_per_s"], ".2f"),
         cell(r["step_ms_median"], ".1f"), cell(r["step_ms_iqr"], ".1f"), cell(r["peak_mem_mb"], ".0f"),
         cell(r["mfu_pct"], ".1f"), status_cell(r))
        for r in rows])
