"""Maps the repository's folders to import names (see CONTRIBUTING.md).

``sdk/`` is ``drivetrain``, ``connectors/`` is ``drivetrain.connectors``, ``contrib_pipelines/``
is ``drivetrain.contrib`` and ``airflow_integration/`` is ``drivetrain.airflow``. A wheel holds
only ``drivetrain/...``. Everything else about the package is in pyproject.toml.
"""

from setuptools import find_packages, setup

FOLDERS = {
    "drivetrain": "sdk",
    "drivetrain.connectors": "connectors",
    "drivetrain.contrib": "contrib_pipelines",
    "drivetrain.airflow": "airflow_integration",
}

packages = []
for name, folder in FOLDERS.items():
    packages.append(name)
    packages.extend(f"{name}.{sub}" for sub in find_packages(folder))

setup(packages=packages, package_dir=FOLDERS)
