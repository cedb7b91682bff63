"""DuckDB: the embedded default warehouse for stage, target and drive table."""

from .warehouse import DuckDBWarehouse

__all__ = ["DuckDBWarehouse"]
