"""Loading the repository's scripts (examples/, benchmarks/) as modules, so tests can call their functions."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str, name: str):
    """The script at ROOT/relative_path, executed as a module called `name`."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
