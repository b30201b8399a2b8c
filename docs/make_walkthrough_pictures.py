"""Draw the walkthrough's two graphs: runs docs/walkthrough.md's code, then renders its DOT strings.

    PYTHONPATH=. python docs/make_walkthrough_pictures.py

writes docs/walkthrough_d_step.{dot,svg} and docs/walkthrough_g_step.{dot,svg}. The .dot files need
nothing but minigan; the .svg files need Graphviz (`pip install graphviz` and the `dot` program).
Running the page's own doctest code, rather than a copy of it, keeps the pictures the page's graphs.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import sys
from pathlib import Path

from minigan import viz

DOCS = Path(__file__).resolve().parent
PICTURES = {"d_step_dot": "walkthrough_d_step", "g_step_dot": "walkthrough_g_step"}


def walkthrough_graphs() -> dict[str, str]:
    """{variable name: DOT text} for the graphs that walkthrough.md computes."""
    text = (DOCS / "walkthrough.md").read_text(encoding="utf-8")
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):  # the page's printed values; its doctest checks them
        for example in doctest.DocTestParser().get_examples(text):
            exec(compile(example.source, "walkthrough.md", "single"), namespace)
    return {name: namespace[name] for name in PICTURES}


def main() -> int:
    graphs = walkthrough_graphs()
    for name, stem in PICTURES.items():
        print("wrote", viz.render(graphs[name], str(DOCS / f"{stem}.dot")))
        try:
            print("wrote", viz.render(graphs[name], str(DOCS / f"{stem}.svg")))
        except RuntimeError as error:
            print(error, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
