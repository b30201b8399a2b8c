"""Loading the repository's scripts (examples/, benchmarks/) as modules, so tests can call their functions."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str, name: str):
    """The script at ROOT/relative_path, executed as a module called `name` (and registered under
    that name in sys.modules, as an import would be: dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
