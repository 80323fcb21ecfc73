"""ds2cli installs as one package: the repository's data_prep/ and recipes/ folders become
`ds2cli.data_prep` and `ds2cli.recipes` (metadata and dependencies are in setup.cfg)."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["ds2cli", "ds2cli.*"]) + ["ds2cli.data_prep", "ds2cli.recipes"],
    package_dir={"ds2cli.data_prep": "data_prep", "ds2cli.recipes": "recipes"},
    package_data={"ds2cli.recipes": ["*.toml"]},
)
