"""What the SQL database sources (MySQL / MariaDB, PostgreSQL) have in common.

:mod:`.options` holds the ``ssl`` section and the option checks both configs make, :mod:`.text`
the statement and identifier helpers and the driver-error translation, :mod:`.source` the
skeleton of a source that reads one window at a time over a lazily opened shared connection.
Nothing here imports a database driver.
"""
