"""``stage_system.schema_contract`` in config.json: accepted forms and the messages for a typo."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from drivetrain.config import PipelineConfig
from drivetrain.errors import ConfigError
from drivetrain.schema_contract import SchemaContract
from tests.sdk.factory import BASE_CONFIG


def load(contract: Any) -> PipelineConfig:
    config = copy.deepcopy(BASE_CONFIG)
    config["stage_system"]["schema_contract"] = contract
    return PipelineConfig.from_dict(config)


@pytest.mark.parametrize(("value", "expected"), [
    (None, SchemaContract("evolve", "evolve")),
    ("freeze", SchemaContract("freeze", "freeze")),
    ({"columns": "discard_row"}, SchemaContract("discard_row", "evolve")),
    ({"data_type": "discard_value"}, SchemaContract("evolve", "discard_value")),
    ({"columns": "freeze", "data_type": "discard_row"}, SchemaContract("freeze", "discard_row")),
])
def test_accepted_forms(value: Any, expected: SchemaContract) -> None:
    config = load(value) if value is not None else PipelineConfig.from_dict(copy.deepcopy(BASE_CONFIG))
    assert SchemaContract.from_option(config.stage.get("schema_contract")) == expected
    assert "schema_contract" not in config.drive_table.options  # the drive table's section never inherits it


@pytest.mark.parametrize(("value", "message"), [
    ("sometimes", "stage_system.schema_contract: 'sometimes' is not one of 'evolve', 'freeze', 'discard_row', 'discard_value'"),
    ({"columns": "freez"}, "stage_system.schema_contract.columns: 'freez' is not one of"),
    ({"colums": "freeze"}, "stage_system.schema_contract.colums: unknown key; did you mean 'columns'?"),
])
def test_a_typo_names_the_json_path_and_the_choices(value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(value)
    assert message in str(caught.value)
