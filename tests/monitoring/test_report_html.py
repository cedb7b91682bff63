"""The HTML report as a person sees it: rendered by headless Chromium, read back from the DOM.

Chromium is Debian's ``chromium`` package; without it these tests fail with the install
command. The rendered page and a screenshot are kept under ``test-artifacts/monitoring/``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from drivetrain.monitoring import metrics, report_html

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "monitoring"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("headless Chromium is needed to check the HTML report: "
                "install it with: sudo apt-get install -y chromium")


class _Text(HTMLParser):
    """Visible text of a page, one chunk per text node (scripts and styles left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        if tag in ("script", "style", "title"):
            self._skip += 1

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        if tag in ("script", "style", "title") and self._skip:
            self._skip -= 1

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if not self._skip and data.strip():
            self.chunks.append(data.strip())


def browse(chromium: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [chromium, *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"chromium failed ({result.returncode}): {result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def rendered(history, chromium, tmp_path_factory):
    """The report written, its DOM after scripts ran, and a screenshot (both kept as artifacts)."""
    with history.pipeline() as pipeline:
        computed = metrics.compute(pipeline.drive_store(), ["lab"], days=7)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = ARTIFACTS / "report.html"
    report_html.write(computed, page)
    profile = tmp_path_factory.mktemp("chromium-profile")
    dom = browse(chromium, page, profile, "--dump-dom").stdout
    (ARTIFACTS / "report.dom.html").write_text(dom)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    browse(chromium, page, profile, "--window-size=1400,2600", f"--screenshot={shot}")
    parser = _Text()
    parser.feed(dom)
    return {"metrics": computed, "dom": dom, "text": parser.chunks, "screenshot": shot, "page": page}


def text_of(rendered) -> str:
    return " | ".join(rendered["text"])


class TestWhatAPersonSees:
    def test_the_four_dashboards_are_there_in_order(self, rendered):
        headings = [t for t in rendered["text"] if re.match(r"^[1-4]\. ", t)]
        assert headings == ["1. Pipeline health", "2. Failure analysis", "3. Performance", "4. Data quality"]

    def test_the_pipeline_and_its_red_light_are_shown(self, rendered):
        assert "lab" in rendered["text"]
        assert 'class="light alert"' in rendered["dom"]

    def test_the_failed_runs_phase_and_error_are_shown(self, history, rendered):
        text = text_of(rendered)
        assert history.runs[4].pipeline_id in text and history.runs[1].pipeline_id in text
        assert "stage_to_target_transfer" in text and "PermanentError: injected failure in stage_to_target_transfer" in text
        assert "source -> stage lost" in text

    def test_the_numbers_match_the_metrics(self, rendered):
        text = rendered["text"]
        assert "60.0%" in text  # success rate
        assert "50.0%" in text  # retry success rate
        counts = rendered["metrics"].count_mismatches[0]
        assert str(counts.source_rows) in text and str(counts.rejected) in text

    def test_retry_results_say_which_failures_a_retry_fixed(self, rendered):
        assert "fixed by a retry" in rendered["text"] and "not yet" in rendered["text"]

    def test_charts_are_inline_svg(self, rendered):
        assert rendered["dom"].count("<svg") >= 5
        assert "Success rate per pipeline" in rendered["dom"]

    def test_nothing_is_loaded_from_the_network(self, rendered):
        html = rendered["page"].read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
        assert "@import" not in html

    def test_a_screenshot_is_kept(self, rendered):
        shot = rendered["screenshot"]
        assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


class TestEscaping:
    def test_text_from_the_drive_table_cannot_inject_markup(self, rendered):
        from datetime import UTC, datetime

        evil = metrics.FailedRun(pipeline="<b>x</b>", run_id="r1", started_at=datetime.now(UTC), window_start=None,
                                 window_end=None, attempt=1, phase_failed="audit", error_message="<script>alert(1)</script>",
                                 recovered=False)
        html = report_html.render(rendered["metrics"].merge(
            metrics.Metrics(generated_at=rendered["metrics"].generated_at, since=rendered["metrics"].since, sources=(), failed_runs=(evil,))))
        assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<b>x</b>" not in html
