"""MySQL / MariaDB source: ``type: "mysql"`` (or ``"mariadb"``) in ``source_system``.

Needs the ``mysql`` extra (``pip install 'drivetrain[mysql]'``, which brings pymysql); the
client library is imported on first use, so importing this package never fails.
"""

from drivetrain.connectors.mysql.config import MySQLOptions, SSLOptions
from drivetrain.connectors.mysql.source import MySQLSource

__all__ = ["MySQLOptions", "MySQLSource", "SSLOptions"]
