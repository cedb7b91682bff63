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
