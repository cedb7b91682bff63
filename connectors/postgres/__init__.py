"""PostgreSQL source: ``type: "postgres"`` (or ``"postgresql"``) in ``source_system``.

Needs the ``postgres`` extra (``pip install 'drivetrain[postgres]'``, which brings psycopg 3);
the client library is imported on first use, so importing this package never fails.
"""

from drivetrain.connectors.postgres.config import PostgresOptions, SSLOptions
from drivetrain.connectors.postgres.source import PostgresSource

__all__ = ["PostgresOptions", "PostgresSource", "SSLOptions"]
