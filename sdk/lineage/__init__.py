"""OpenLineage events for drivetrain runs, sent by a built-in plugin.

Off by default; ``"monitoring": {"openlineage": true}`` in a pipeline's config turns it on.
Where events go is the OpenLineage client's own configuration (``openlineage.yml``,
``OPENLINEAGE_CONFIG``, ``OPENLINEAGE_URL``...), so the same settings serve every tool a team
runs. See docs/lineage.md.

* each run is one OpenLineage run of the job ``<pipeline>``: START when the drive-table row
  exists, COMPLETE (SUCCESS or SKIPPED) or FAIL when it ends;
* each phase that runs is a run of the job ``<pipeline>.<phase>``, with a ``parent`` facet
  naming the pipeline's run;
* the source is an input, stage and target are outputs (:mod:`drivetrain.lineage.datasets`),
  and the counts travel as ``inputStatistics`` / ``outputStatistics`` facets.

Inside an Airflow task where the Airflow OpenLineage provider is installed and enabled, the
provider reports the task, and this plugin stays silent (see :func:`airflow_provider_active`).
Sending never fails a run: a receiver that cannot be reached is logged as a warning.
"""

from drivetrain.lineage.events import airflow_provider_active

__all__ = ["airflow_provider_active"]
