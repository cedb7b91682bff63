"""docs/operations.md stays true: its settings exist and its notifier example works."""

from __future__ import annotations

import re
from pathlib import Path

from drivetrain.monitoring import notify
from drivetrain.plugins import get_plugin_manager

DOC = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC, flags=re.S)


class TestOperationsDoc:
    def test_every_notifier_and_config_cache_variable_is_documented_and_no_other(self):
        from drivetrain import _cache_dir
        from drivetrain.config import validated_cache

        # the notifiers' variables, and the cache folder's (documented with the fleet)
        source = "".join(Path(m.__file__).read_text() for m in (notify, validated_cache, _cache_dir))
        used = set(re.findall(r'"(DRIVETRAIN_[A-Z_]+)"', source))
        documented = set(re.findall(r"`(DRIVETRAIN_[A-Z_]+)`", DOC))
        assert used == documented

    def test_every_monitoring_setting_is_a_config_key(self):
        from drivetrain.config import model

        fields = {f.name for f in model.MonitoringConfig.__attrs_attrs__}
        for key in re.findall(r"`(alert_on_\w+|duration_multiplier_threshold|freshness_threshold)`", DOC):
            assert key in fields

    def test_the_notifier_example_registers_a_working_notifier(self, clean_env):
        example = next(b for b in python_blocks() if "class PagerNotifier" in b)
        namespace: dict = {}
        exec(compile(example, "operations.md", "exec"), namespace)  # noqa: S102 - our own doc
        plugin = type("DocPlugin", (), {"drivetrain_register_notifiers": staticmethod(namespace["drivetrain_register_notifiers"])})
        get_plugin_manager().register(plugin)
        clean_env.setenv("PAGER_TOKEN", "t0ken-for-test")
        assert [type(n).__name__ for n in notify.configured_notifiers()] == ["PagerNotifier"]
