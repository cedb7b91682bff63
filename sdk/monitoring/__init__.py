"""Operating many pipelines: metrics, the health report, alerts, gaps and logs.

* :mod:`~drivetrain.monitoring.metrics`: the six metrics and four dashboards, computed with
  portable SQL over the drive table (``compute(store, pipelines, days=7)``);
* :mod:`~drivetrain.monitoring.report_html`: the dashboards as one offline HTML file;
* :mod:`~drivetrain.monitoring.notify`: email (SMTP) and Slack (webhook) notifiers;
* :mod:`~drivetrain.monitoring.plugin`: the built-in plugin that alerts on failures and slow
  phases, and :func:`check_freshness` for stale data;
* :mod:`~drivetrain.monitoring.gaps`: windows that never ran or never succeeded;
* :mod:`~drivetrain.monitoring.logs`: ``configure_logging(level, json=...)``;
* :mod:`~drivetrain.monitoring.cli`: ``drivetrain report`` and the gap helpers of the CLI.

See docs/operations.md.
"""

from typing import TYPE_CHECKING

from drivetrain._lazy import lazy_getattr

if TYPE_CHECKING:
    from drivetrain.monitoring.gaps import Gap, GapRange, find_gaps
    from drivetrain.monitoring.logs import JsonFormatter, configure_logging
    from drivetrain.monitoring.metrics import Metrics, compute
    from drivetrain.monitoring.notify import Alert, EmailNotifier, Notifier, SlackNotifier
    from drivetrain.monitoring.plugin import check_freshness

__all__ = [
    "Alert",
    "EmailNotifier",
    "Gap",
    "GapRange",
    "JsonFormatter",
    "Metrics",
    "Notifier",
    "SlackNotifier",
    "check_freshness",
    "compute",
    "configure_logging",
    "find_gaps",
]

#: Where each name lives: imported on first use, so the alerting plugin (loaded by every run)
#: does not bring in the report, the metrics and the gap finder (tests/test_startup_imports.py).
_EXPORTS = {
    "Alert": "drivetrain.monitoring.notify",
    "EmailNotifier": "drivetrain.monitoring.notify",
    "Gap": "drivetrain.monitoring.gaps",
    "GapRange": "drivetrain.monitoring.gaps",
    "JsonFormatter": "drivetrain.monitoring.logs",
    "Metrics": "drivetrain.monitoring.metrics",
    "Notifier": "drivetrain.monitoring.notify",
    "SlackNotifier": "drivetrain.monitoring.notify",
    "check_freshness": "drivetrain.monitoring.plugin",
    "compute": "drivetrain.monitoring.metrics",
    "configure_logging": "drivetrain.monitoring.logs",
    "find_gaps": "drivetrain.monitoring.gaps",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
