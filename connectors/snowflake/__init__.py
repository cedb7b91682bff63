"""Snowflake: stage, target and drive table in a Snowflake account.

Needs the ``snowflake`` extra (snowflake-connector-python); it is imported when the first
session opens, so this package imports without it.
"""

from .warehouse import SnowflakeWarehouse

__all__ = ["SnowflakeWarehouse"]
