"""Elasticsearch source: ``"type": "elasticsearch"`` in ``source_system``.

Needs the ``elasticsearch`` extra (``pip install 'drivetrain[elasticsearch]'``); the client's
major version must match the cluster's. See :class:`ElasticsearchSource`.
"""

from .config import OPTIONS_SCHEMA, EsOptions
from .source import ElasticsearchSource

__all__ = ["OPTIONS_SCHEMA", "ElasticsearchSource", "EsOptions"]
