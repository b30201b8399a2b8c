"""minigan.viz: the DOT text is well formed and marks exactly the tensors that backward will reach."""

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigan import Tensor, backend, concatenate, gan, nn, no_grad, viz

NODE = re.compile(r"^\s*(n\d+) \[(.*)\];$")
EDGE = re.compile(r"^\s*(n\d+) -> (n\d+);$")
ATTRIBUTE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^,\s]+)')


def parse_dot(text):
    """{node: {attribute: value}} and [(tail, head)], after checking the DOT's structure."""
    depth, in_quote, escaped = 0, False, False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            in_quote = not in_quote
        elif not in_quote and ch in "{}":
            depth += 1 if ch == "{" else -1
            assert depth >= 0, "a } closes nothing"
    assert depth == 0 and not in_quote, "unbalanced braces or quotes"
    lines = text.strip().splitlines()
    assert lines[0] == "digraph minigan {" and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if line.strip().startswith(("graph [", "node [")):
            continue
        if match := NODE.match(line):
            assert match[1] not in nodes, f"{match[1]} declared twice"
            nodes[match[1]] = {k: v.strip('"') for k, v in ATTRIBUTE.findall(match[2])}
        elif match := EDGE.match(line):
            edges.append((match[1], match[2]))
        else:
            raise AssertionError(f"unexpected DOT line: {line!r}")
    for tail, head in edges:
        assert tail in nodes and head in nodes, f"edge {tail} -> {head} has an undeclared end"
    return nodes, edges


def by_head(nodes):
    """{first line of the label: [class lists]}."""
    out = {}
    for attributes in nodes.values():
        out.setdefault(attributes["label"].split("\\n")[0], []).append(attributes["class"].split())
    return out


def test_a_known_graph_exactly():
    x = Tensor(np.ones((2, 3), np.float32))
    w = Tensor(np.ones((3, 1), np.float32), requires_grad=True)
    loss = (x @ w).tanh().sum()
    nodes, edges = parse_dot(viz.to_dot(loss, names={"x": x, w: "w"}))
    labels = {n: a["label"] for n, a in nodes.items()}
    assert labels == {"n0": "sum\\n() float32", "n1": "tanh\\n(2, 1) float32", "n2": "matmul\\n(2, 1) float32",
                      "n3": "x\\n(2, 3) float32", "n4": "w\\n(3, 1) float32"}
    assert sorted(edges) == [("n1", "n0"), ("n2", "n1"), ("n3", "n2"), ("n4", "n2")]
    assert nodes["n3"]["class"] == "none" and nodes["n4"]["class"] == "leaf-grad"
    assert nodes["n0"]["class"] == "op-grad" and nodes["n0"].get("peripheries") == "2"


UNARY = ["exp", "tanh", "sigmoid", "softplus", "relu", "neg", "sum0", "T", "square"]
BINARY = ["add", "mul", "sub", "div", "matmul"]


def apply(op, a, b):
    if op == "sum0":
        return a.sum(axis=0, keepdims=True)
    if op == "T":
        return a.T
    if op == "square":
        return a ** 2
    if op == "neg":
        return -a
    if op in UNARY:
        return getattr(a, op)()
    if op == "matmul":
        return a @ Tensor(np.ones((a.shape[1], a.shape[1])), requires_grad=b.requires_grad)
    return {"add": a + b, "mul": a * b, "sub": a - b, "div": a / (b * b + 1)}[op]


@given(ops=st.lists(st.sampled_from(UNARY + BINARY), min_size=1, max_size=12),
       grads=st.lists(st.booleans(), min_size=2, max_size=2), reuse=st.booleans())
def test_any_chain_is_drawn_whole(ops, grads, reuse):
    a = Tensor(np.full((2, 2), 0.5), requires_grad=grads[0])
    b = Tensor(np.full((2, 2), 0.25), requires_grad=grads[1])
    out = a
    with np.errstate(all="ignore"):  # exp(exp(...)) may overflow; the graph is what is checked
        for op in ops:
            # reuse: the other operand is the running result itself, so a node has two paths to the root
            out = apply(op, out, out if reuse else b)
    if out.shape != (2, 2):
        out = out * Tensor(np.ones((2, 2)))
    nodes, edges = parse_dot(viz.to_dot(out, names={"a": a, "b": b}))
    reachable = viz.graph_nodes(out)
    assert len(nodes) == len(reachable) == len({id(t) for t in reachable})
    assert len(edges) == sum(len(t._parents) for t in reachable)
    for name, tensor in zip(sorted(nodes, key=lambda n: int(n[1:])), reachable):
        expected = "none" if not tensor.requires_grad else ("op-grad" if tensor._parents else "leaf-grad")
        assert nodes[name]["class"].split()[0] == expected
    # Nothing is drawn as receiving a gradient unless some input asked for one.
    assert any(grads) or all(attributes["class"] == "none" for attributes in nodes.values())


def test_after_backward_the_freed_graph_is_said_not_drawn_as_leaves():
    w = Tensor(np.ones(3), requires_grad=True)
    loss = (w * 2.0).sum()
    loss.backward()
    nodes, edges = parse_dot(viz.to_dot(loss))
    assert edges == [] and [a["label"] for a in nodes.values()] == ["sum (graph freed by backward)\\n() float64"]
    assert nodes["n0"]["class"] == "none"
    w2 = Tensor(np.ones(3), requires_grad=True)
    kept = (w2 * 2.0).sum()
    kept.backward(retain_graph=True)
    assert len(parse_dot(viz.to_dot(kept))[0]) == 4  # sum, mul, w2, the constant 2


def test_a_long_chain_needs_no_recursion():
    x = Tensor(np.ones(3), requires_grad=True)
    y = x
    for _ in range(sys.getrecursionlimit() + 500):
        y = y * 1.0
    nodes, edges = parse_dot(viz.to_dot(y))
    assert len(nodes) == 2 * (sys.getrecursionlimit() + 500) + 1


def tiny_game():
    backend.manual_seed(0)
    G = nn.Sequential(nn.Linear(2, 4, dtype=np.float64), nn.LeakyReLU(0.2), nn.Linear(4, 2, dtype=np.float64))
    D = nn.Sequential(nn.Linear(2, 4, dtype=np.float64), nn.LeakyReLU(0.2), nn.Linear(4, 1, dtype=np.float64))
    rng = np.random.default_rng(0)
    return G, D, Tensor(rng.normal(size=(3, 2))), Tensor(rng.normal(size=(3, 2)))


def d_step_loss(G, D, x, z, fake_under_no_grad=True):
    """discriminator_step's forward pass."""
    if fake_under_no_grad:
        with no_grad():
            fake = G(z)
    else:
        fake = G(z)
    logits = D(concatenate([x, fake]))
    return gan.discriminator_loss(logits[:len(x)], logits[len(x):])


def test_d_step_graph_marks_d_and_not_g():
    G, D, x, z = tiny_game()
    loss = d_step_loss(G, D, x, z)
    heads = by_head(parse_dot(viz.to_dot(loss, names={"G": G, "D": D}))[0])
    for name, _ in D.named_parameters():
        assert heads[f"D.{name}"] == [["leaf-grad", "param", "role-D"]]
    # G(z) was made under no_grad: the graph stops at D's input, a constant, and G is not in it.
    assert not any(head.startswith("G.") for head in heads)
    assert heads["concatenate (constant)"] == [["none"]]
    loss.backward()
    assert all(p.grad is not None for p in D.parameters()) and all(p.grad is None for p in G.parameters())


def test_d_step_graph_without_no_grad_would_reach_g():
    """The control for the test above: the same lines without no_grad draw G as receiving gradients."""
    G, D, x, z = tiny_game()
    heads = by_head(parse_dot(viz.to_dot(d_step_loss(G, D, x, z, fake_under_no_grad=False),
                                         names={"G": G, "D": D}))[0])
    assert heads["G.0.weight"] == [["leaf-grad", "param", "role-G"]]


def test_g_step_graph_marks_g_and_not_frozen_d():
    G, D, x, z = tiny_game()
    with gan.frozen(D):
        loss = gan.generator_loss(D(G(z)), "nonsaturating")
        dot_text = viz.to_dot(loss, names={"G": G, "D": D})
        loss.backward()
    heads = by_head(parse_dot(dot_text)[0])
    for name, _ in D.named_parameters():
        assert heads[f"D.{name}"] == [["none", "param", "role-D"]]
    for name, _ in G.named_parameters():
        assert heads[f"G.{name}"] == [["leaf-grad", "param", "role-G"]]
    # What the picture says is what backward did.
    assert all(p.grad is None for p in D.parameters()) and all(p.grad is not None for p in G.parameters())
    # Outside frozen(D) the same parameters would receive gradients again.
    loss = gan.generator_loss(D(G(z)), "nonsaturating")
    assert by_head(parse_dot(viz.to_dot(loss, names={"D": D}))[0])["D.0.weight"][0][0] == "leaf-grad"


def test_names_roles_and_colours():
    G, D, x, z = tiny_game()
    with no_grad():
        fake = G(z)
    dot_text = viz.to_dot(D(fake), names={"D": D, fake: "G(z)"})
    nodes, _ = parse_dot(dot_text)
    weight = next(a for a in nodes.values() if a["label"].startswith("D.0.weight"))
    assert weight["color"] == viz.ROLE_COLOURS["D"] and weight["fillcolor"] == viz.FILL["leaf_grad"]
    fake_node = next(a for a in nodes.values() if a["label"].startswith("G(z) = affine\\n(3, 2)"))
    assert fake_node["class"] == "none"
    with pytest.raises(TypeError, match="names maps"):
        viz.to_dot(fake, names={"G": 3})


def test_render_writes_dot_and_says_how_without_graphviz(tmp_path, monkeypatch):
    dot_text = viz.to_dot(Tensor(np.ones(2), requires_grad=True).sum())
    path = viz.render(dot_text, str(tmp_path / "graph.dot"))
    assert open(path, encoding="utf-8").read() == dot_text
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz now raises ImportError
    with pytest.raises(RuntimeError, match=r"dot -Tsvg graph.dot -o graph.svg") as error:
        viz.render(dot_text, str(tmp_path / "graph.svg"))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="should end in"):
        viz.render(dot_text, str(tmp_path / "graph.txt"))


def test_render_svg_when_graphviz_is_installed(tmp_path):
    graphviz = pytest.importorskip("graphviz")
    try:
        graphviz.version()
    except graphviz.ExecutableNotFound:
        pytest.skip("Graphviz's dot program is not installed")
    G, D, x, z = tiny_game()
    path = viz.render(viz.to_dot(d_step_loss(G, D, x, z), names={"D": D}), str(tmp_path / "d.svg"))
    svg = open(path, encoding="utf-8").read()
    assert "<svg" in svg and "D.0.weight" in svg and svg.count('class="node') == 20


def test_committed_walkthrough_graphs_are_current():
    """docs/walkthrough_*.dot (and the .svg drawn from them) are what docs/walkthrough.md computes."""
    docs = Path(__file__).resolve().parents[1] / "docs"
    spec = importlib.util.spec_from_file_location("make_walkthrough_pictures", docs / "make_walkthrough_pictures.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    graphs = script.walkthrough_graphs()
    for name, stem in script.PICTURES.items():
        parse_dot(graphs[name])
        assert (docs / f"{stem}.dot").read_text(encoding="utf-8") == graphs[name], (
            f"docs/{stem}.dot is stale: run PYTHONPATH=. python docs/make_walkthrough_pictures.py")
