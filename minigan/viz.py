"""Draw the graph behind a tensor: which ops made it, and where backward() will send gradients.

    dot_text = viz.to_dot(loss, names={"G": G, "D": D})   # Graphviz DOT text, no dependency
    viz.render(dot_text, "graph.svg")                       # needs `pip install graphviz` and `dot`

One node per op (op name, shape, dtype) and one per leaf. A parameter found in `names` is
labelled by its role and name (`D.0.weight`) and outlined in its role's colour. The fill says
what the next backward() does at that node, read from `requires_grad` as it is *now*:

- orange: a leaf that will receive `.grad` (a parameter of the player being trained);
- yellow: an op's output that a gradient will pass through on its way to such leaves;
- grey:   no gradient, a constant: data, a frozen player's parameters (`gan.frozen`), or
          anything made under `no_grad`. The engine records no inputs for such an op's output,
          so it is drawn as a leaf even when it has an op name (e.g. D's input in the D step).

Draw before calling backward(): backward frees each op's inputs as it goes, unless it was
called with retain_graph=True (a freed op is drawn grey, "graph freed by backward").
"""

from __future__ import annotations

from .atomic import atomic_write_bytes
from .nn import Module
from .tensor import Tensor

RENDER_HINT = "save the DOT text to graph.dot and run: dot -Tsvg graph.dot -o graph.svg"
FILL = {"leaf_grad": "#f4a261", "op_grad": "#fde8a6", "none": "#e4e4e4"}
# G green and D blue, as in Figure 1; any other role takes the next free colour.
ROLE_COLOURS = {"G": "#2a9d4f", "D": "#2b6cb0"}
MORE_COLOURS = ("#9b4dca", "#c0392b", "#8a6d3b", "#d4a017")
COLOUR_NAMES = {"#2a9d4f": "green", "#2b6cb0": "blue", "#9b4dca": "purple", "#c0392b": "red",
                "#8a6d3b": "brown", "#d4a017": "gold"}
LEGEND = ("orange: receives .grad in this backward   yellow: a gradient passes through   "
          "grey: no gradient (constant, frozen, or made under no_grad)")


def graph_nodes(root: Tensor) -> list[Tensor]:
    """Every tensor that `root` was computed from, root first, each once (depth-first, no recursion).

    Unlike backward's topological sort this also visits inputs that need no gradient, so that
    data and frozen parameters appear in the picture.
    """
    nodes, seen, stack = [], set(), [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(node)
        # Reversed, so that an op's first input is visited first: stable, readable numbering.
        stack.extend(p for p in reversed(node._parents) if id(p) not in seen)
    return nodes


def _names_by_id(names) -> dict[int, str]:
    """{id(tensor): name} from {"G": module, "x": tensor} and/or {tensor: "name"}."""
    by_id = {}
    for key, value in (names or {}).items():
        if isinstance(value, Module):
            by_id.update((id(p), f"{key}.{n}") for n, p in value.named_parameters())
        elif isinstance(value, Tensor):
            by_id[id(value)] = str(key)
        elif isinstance(key, Tensor):
            by_id[id(key)] = str(value)
        else:
            raise TypeError(f"to_dot: names maps a role to a Module or a Tensor, or a Tensor to a name; "
                            f"got {type(key).__name__} -> {type(value).__name__}")
    return by_id


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _head(node: Tensor, name) -> str:
    """The first line of a node's label: its name, its op, or what kind of constant it is."""
    if name is not None:
        return f"{name} = {node._op}" if node._op else name
    if node._parents:
        return node._op
    if not node.is_leaf:  # an op whose inputs backward() has already let go of
        return f"{node._op} (graph freed by backward)"
    if node._op:  # made without a graph (under no_grad, or from constants only)
        return f"{node._op} (constant)"
    if node.size == 1:  # a constant such as the 1/m inside mean(): its value says more
        return f"constant {float(node.data.reshape(())):.4g}"
    return "leaf"


def to_dot(root: Tensor, names=None, title=None) -> str:
    """Graphviz DOT text for the graph behind `root`; edges run from inputs to outputs."""
    if not isinstance(root, Tensor):
        got = "None" if root is None else type(root).__name__
        raise TypeError(f"to_dot: expected the Tensor whose graph to draw, got {got}")
    by_id = _names_by_id(names)
    nodes = graph_nodes(root)
    drawn_names = (by_id.get(id(node), "") for node in nodes)
    roles = sorted({name.split(".")[0] for name in drawn_names if "." in name})
    others = [role for role in roles if role not in ROLE_COLOURS]
    role_colour = {**ROLE_COLOURS, **{r: MORE_COLOURS[i % len(MORE_COLOURS)] for i, r in enumerate(others)}}
    ident = {id(node): f"n{i}" for i, node in enumerate(nodes)}
    legend = [title] if title else []
    legend.append(LEGEND)
    if roles:
        colours = (f"{role} {COLOUR_NAMES.get(role_colour[role], role_colour[role])}" for role in roles)
        legend.append(f"outlined: parameters, in their player's colour ({', '.join(colours)})")
    lines = ["digraph minigan {", '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, labelloc=b, '
             f"label={_quote(chr(10).join(legend))}];",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];']
    for node in nodes:
        name = by_id.get(id(node))
        shape = "(" + ", ".join(str(n) for n in node.shape) + ("," if node.ndim == 1 else "") + ")"
        head = _head(node, name)
        if not node.requires_grad or not (node._parents or node.is_leaf):
            kind = "none"
        else:
            kind = "op_grad" if node._parents else "leaf_grad"
        classes = [kind.replace("_", "-")]
        attributes = [f"label={_quote(f'{head}{chr(10)}{shape} {node.dtype}')}", f'fillcolor="{FILL[kind]}"']
        role = name.split(".")[0] if name is not None and "." in name else None
        if role is not None:
            classes += ["param", f"role-{role}"]
            attributes += [f'color="{role_colour[role]}"', "penwidth=2.5"]
        if node is root:
            attributes.append("peripheries=2")
        attributes.append(f'class="{" ".join(classes)}"')
        lines.append(f"  {ident[id(node)]} [{', '.join(attributes)}];")
    for node in nodes:
        for parent in node._parents:
            lines.append(f"  {ident[id(parent)]} -> {ident[id(node)]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot_text: str, path: str) -> str:
    """Write `dot_text` as `path`: .dot as it is; .svg, .png or .pdf through Graphviz. Returns path.

    Rendering needs the `graphviz` Python package (`pip install "minigan[viz]"`) and Graphviz's
    `dot` program; without them this raises one RuntimeError line that says how to do it by hand.
    """
    if not isinstance(dot_text, str):
        raise TypeError(f"render: expected DOT text (a str, from to_dot), got {type(dot_text).__name__}")
    path = str(path)
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix in ("dot", "gv"):
        atomic_write_bytes(path, dot_text.encode("utf-8"))
        return path
    if suffix not in ("svg", "png", "pdf"):
        raise ValueError(f"render: {path!r} should end in .svg, .png, .pdf or .dot")
    try:
        import graphviz

        picture = graphviz.Source(dot_text).pipe(format=suffix)
    except ImportError:
        raise RuntimeError(f"render: {path} needs the graphviz Python package (pip install 'minigan[viz]'); "
                           f"or {RENDER_HINT}") from None
    except graphviz.ExecutableNotFound:
        raise RuntimeError(f"render: {path} needs Graphviz's dot program (e.g. apt-get install graphviz); "
                           f"or {RENDER_HINT}") from None
    atomic_write_bytes(path, picture)
    return path
