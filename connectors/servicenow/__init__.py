"""ServiceNow source (``type: "servicenow"``): one table read through the REST Table API.

Needs the ``servicenow`` extra (pysnow), imported on first use. See :mod:`.source` for how
windows are counted and paged, :mod:`.batches` for the Arrow columns it yields and
:mod:`.config` for the options.
"""

from .source import ServiceNowSource

__all__ = ["ServiceNowSource"]
