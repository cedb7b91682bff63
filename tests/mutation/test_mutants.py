"""Mutation check: every small change to the audit and the source count is caught by a test.

Each mutant (see :mod:`tests.mutation.mutants`) runs the focused tests of its function in a
child process; it must make them fail. A surviving mutant is a behaviour of the audit that
no test pins down: add the test (tests/sdk/test_audit.py holds the audit's), or, when the
change cannot alter any outcome, list it in EQUIVALENT with the reason.

The functions are few and the tests focused on purpose, so the check takes a few minutes on
two cores; it is marked slow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import attrs
import pytest

from .mutants import ROOT, Mutant, mutants


@attrs.frozen
class Target:
    module: str
    functions: tuple[str, ...]
    tests: tuple[str, ...]
    """The focused tests, the fastest killers first (the child stops at the first failure)."""


TARGETS = [
    Target("drivetrain.phases.audit", ("loss_percent", "within", "Audit.run", "Audit.loss_reasons"), (
        "tests/sdk/test_audit.py",
        "tests/sdk/test_runner.py::TestAudit::test_loss_equal_to_the_tolerance_passes",
        "tests/sdk/test_runner.py::TestRetries::test_a_silently_short_stream_is_caught_by_the_audit",
        "tests/sdk/test_resume_accounting.py::TestSourceChangingWithinOneAttempt",
    )),
    Target("drivetrain.phases.counts", ("SourceCount.run",), (
        "tests/sdk/test_runner.py::TestAudit::test_empty_window_can_be_skipped_by_config",
        "tests/sdk/test_runner.py::TestAudit::test_empty_window_can_fail_by_config",
        "tests/connectors/test_unplaceable.py::TestInTheDriveRowAndReports::test_warn_records_the_tally_in_source_count_and_the_run_succeeds",
        "tests/connectors/test_unplaceable.py::TestInTheDriveRowAndReports::test_a_clean_source_leaves_no_tally_in_the_row",
        "tests/connectors/test_unplaceable.py::TestInTheDriveRowAndReports::test_fail_fails_source_count_with_the_tally",
        "tests/connectors/test_unplaceable.py::TestFilesSourceCounts",
        "tests/sdk/test_settle.py::TestSettle::test_without_a_horizon_no_fingerprint_is_taken",
        "tests/sdk/test_settle.py::TestSettle::test_late_records_reach_the_target_by_a_reload_that_says_why",
        "tests/sdk/test_settle.py::TestSettle::test_a_late_record_and_a_deleted_one_in_the_same_window_are_found_by_the_fingerprint",
    )),
]

#: Mutants that cannot change an outcome, by ``str(mutant)``, with why.
EQUIVALENT = {
    "drivetrain.phases.audit:Audit.run: skip_dag_run=True  ->  skip_dag_run=False":
        "the failed audit also carries an error_message, which alone fails the phase",
    "drivetrain.phases.counts:SourceCount.run: lost is not None and lost.records  ->  lost is not None or lost.records":
        "an empty tally adds no details and keeps the run going: only a log line of zero records differs",
}

#: Exit codes of the child's pytest: 0 the tests passed (the mutant survived), 1 a test failed.
PASSED, FAILED = 0, 1


def run_child(target: Target, index: int | str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tests.mutation.mutants", target.module, ",".join(target.functions), str(index),
               "--", "-x", "-q", "-p", "no:cacheprovider", "--timeout=300", *target.tests]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


@pytest.mark.slow
@pytest.mark.timeout(1800)  # every mutant of a module, one child process each
@pytest.mark.parametrize("target", TARGETS, ids=[t.module for t in TARGETS])
def test_every_mutant_is_caught(target: Target) -> None:
    baseline = run_child(target, "none")
    assert baseline.returncode == PASSED, f"the focused tests fail without any mutant:\n{baseline.stdout[-3000:]}"
    found = mutants(target.module, target.functions)
    assert found, "no mutants: the functions changed shape; update TARGETS"
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        results = list(pool.map(lambda m: (m, run_child(target, m.index)), found))
    broken = [(m, r) for m, r in results if r.returncode not in (PASSED, FAILED)]
    assert not broken, "\n\n".join(f"{m}: pytest exit {r.returncode}\n{r.stdout[-2000:]}{r.stderr[-2000:]}" for m, r in broken)
    survivors: list[Mutant] = [m for m, r in results if r.returncode == PASSED and str(m) not in EQUIVALENT]
    assert not survivors, "mutants no test catches:\n" + "\n".join(map(str, survivors))
    stale = set(EQUIVALENT) & {str(m) for m, r in results if r.returncode == FAILED}
    assert not stale, f"listed as equivalent but caught now; remove from EQUIVALENT: {sorted(stale)}"
