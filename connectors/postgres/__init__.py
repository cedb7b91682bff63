"""PostgreSQL: ``type: "postgres"`` (or ``"postgresql"``) as ``source_system``, and as
``stage_system``, ``target_system`` or ``drive_table`` (:class:`PostgresWarehouse`).

Needs the ``postgres`` extra (``pip install 'drivetrain[postgres]'``, which brings psycopg 3);
the client library is imported on first use, so importing this package never fails.
"""

from drivetrain.connectors.postgres.config import PostgresOptions, SSLOptions
from drivetrain.connectors.postgres.source import PostgresSource
from drivetrain.connectors.postgres.warehouse import PostgresWarehouse

__all__ = ["PostgresOptions", "PostgresSource", "PostgresWarehouse", "SSLOptions"]
