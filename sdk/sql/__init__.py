"""The SQL layer shared by every SQL warehouse: written once, spoken in each backend's dialect.

Layout (each backend folder keeps only what is its own)::

    session   SqlSession: execute (row count), rows, dicts, Arrow batches, transaction;
              utc_now(), the one clock of the layer
    names     TableRef, identifiers and quoting, PushDown, the lineage columns (described once)
    dialect   SqlDialect: quoting of owned names, qualified table names, window predicates,
              column types, JSON and ARRAY values, dedup and merge SQL text, report helpers
    windows   the window operations of a warehouse on top of a session: count, read, group
              counts, merged counts, date listing/reading/deletion, table ownership claims
    pushdown  stage-to-target for every load strategy (replace, dedup, merge with version
              column and delete_missing), one transaction, fenced
    drive     SqlDriveStore: row codec, schema version and migrations, select/get/attempts/
              history/pipelines, fenced writes and heartbeats; leases stay with the backend

A backend supplies a session (``Warehouse.sql``), a dialect, its table DDL (``table_columns``,
``ensure_table``), its bulk load (``window_load``), and its lease strategy (five lease methods and
``fence_sql`` on its :class:`SqlDriveStore`). See docs/plugins.md, "Adding a warehouse".
"""
