"""ds2cli: Deep Speech 2 speech recognition (and Neural Turing Machines) from the command line."""
from pathlib import Path as _Path

__version__ = "0.1.0"

# The corpus preparers and the recipes ship inside this package as `ds2cli.data_prep` and
# `ds2cli.recipes`, while the repository keeps them in its top-level data_prep/ and recipes/
# folders (setup.py maps them with `package_dir`). An installed copy has them beside this file.
# Run from a checkout (PYTHONPATH=. or `pip install -e .`), they are not there: adding the
# checkout's root to this package's search path lets `import ds2cli.data_prep` find data_prep/
# and `importlib.resources.files("ds2cli.recipes")` find recipes/ in both cases.
_here = _Path(__file__).resolve().parent
if not (_here / "data_prep").is_dir() and (_here.parent / "data_prep" / "__init__.py").is_file():
    __path__.append(str(_here.parent))
