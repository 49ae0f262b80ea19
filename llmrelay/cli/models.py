"""`llmrelay models`: the catalog as configured, with each model's lifecycle, capabilities and prices."""

from __future__ import annotations

from datetime import date
from typing import Any

from rich.table import Table

from llmrelay.shared.catalog import CAPABILITIES
from llmrelay.shared.settings import Settings

#: How each capability reads in the table's narrow column.
_SHORT = {
    "tools": "tools",
    "vision": "vision",
    "documents": "pdf",
    "json_schema": "schema",
    "reasoning": "reason",
}


def catalog_rows(settings: Settings, today: date) -> list[dict[str, Any]]:
    """Every catalog entry as ``llm.models`` shows it, plus whether ALLOWED_MODELS lets requests use it."""
    allowed = {settings.catalog.resolve(name).name for name in settings.effective_allowed_models
               if settings.catalog.get(name) is not None}  # fmt: skip
    return [
        {**info.public(today), "allowed": info.name in allowed} for info in settings.catalog.models.values()
    ]


def _price(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _lifecycle(row: dict[str, Any]) -> str:
    state = str(row["lifecycle"])
    if row["retires_on"]:
        state += f" {'on' if state == 'retired' else 'until'} {row['retires_on']}"
    if row["successor"]:
        state += f" -> {row['successor']}"
    if row["served"]:
        state += " (served)"
    return state


def catalog_table(rows: list[dict[str, Any]], today: date, prices_as_of: str) -> Table:
    """The rows as a table: one line per model, retired ones dimmed."""
    table = Table(title=f"Models on {today} (prices as of {prices_as_of}, USD per 1M tokens)")
    for header in (
        "model",
        "provider",
        "kind",
        "lifecycle",
        "can do",
        "in",
        "cached",
        "out",
        "context",
        "allowed",
    ):
        table.add_column(header, justify="right" if header in ("in", "cached", "out", "context") else "left")
    for row in rows:
        capabilities = row.get("capabilities", {})
        can = " ".join(_SHORT[name] for name in CAPABILITIES if capabilities.get(name))
        if row["kind"] == "embedding":
            can = f"{row['dimensions']} dims"
        table.add_row(
            row["id"],
            row["provider"],
            row["kind"],
            _lifecycle(row),
            can,
            _price(row["input_per_mtok"]),
            _price(row["cached_input_per_mtok"]),
            _price(row.get("output_per_mtok")),
            f"{row['context_window']:,}",
            "yes" if row["allowed"] else "",
            style="dim" if row["lifecycle"] == "retired" and not row["served"] else None,
        )
    return table
