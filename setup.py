"""Maps the repository's folders to import names (see CONTRIBUTING.md).

``sdk/`` is ``drivetrain``, ``connectors/`` is ``drivetrain.connectors``, ``contrib_pipelines/``
is ``drivetrain.contrib``, ``airflow_integration/`` is ``drivetrain.airflow``, and the user
documentation in ``docs/`` ships as ``drivetrain/docs`` (``drivetrain docs`` reads it). A wheel
holds only ``drivetrain/...``. Everything else about the package is in pyproject.toml.

A contrib pipeline is a folder, not a package (no ``__init__.py``); it is listed as a
namespace package so that its files are packaged without setuptools warning about them.
"""

from setuptools import find_namespace_packages, find_packages, setup

FOLDERS = {
    "drivetrain": "sdk",
    "drivetrain.connectors": "connectors",
    "drivetrain.contrib": "contrib_pipelines",
    "drivetrain.airflow": "airflow_integration",
    "drivetrain.docs": "docs",
}
#: Folders whose every sub-folder is packaged, __init__.py or not.
DATA_FOLDERS = {"contrib_pipelines", "docs"}

packages = []
for name, folder in FOLDERS.items():
    packages.append(name)
    find = find_namespace_packages if folder in DATA_FOLDERS else find_packages
    packages.extend(f"{name}.{sub}" for sub in find(folder, exclude=["__pycache__", "*.__pycache__"]))

setup(packages=packages, package_dir=FOLDERS)
