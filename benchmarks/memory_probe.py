"""Where does the readable path's peak memory go in one training iteration?

    PYTHONPATH=. python benchmarks/memory_probe.py                        # B = 1024 and 8192
    PYTHONPATH=. python benchmarks/memory_probe.py --batch-sizes 128 --top 20

For the `reference` config at each batch size: build G and D, run one warm-up iteration (so that
Adam's state and the previous step's gradients exist, as in training), then trace one more
`gan.train_iteration` (k = 1) with tracemalloc, which NumPy reports its array allocations to.

Printed per batch size:
- what was alive before the iteration (parameters, gradients kept from the last step, Adam state);
- the traced peak during the iteration;
- a snapshot taken at the highest point seen between Python calls (a sys.setprofile hook checks
  the traced total at every call and return): the source lines that allocated what was alive
  then, largest first. The true peak can sit a little higher, inside one NumPy expression (its
  temporaries live between two Python events); the gap is printed.

tracemalloc does not see torch's allocator; for minigan against torch use bench_step.py's peak
RSS column (each implementation in a fresh process).
"""

from __future__ import annotations

import argparse
import sys
import tracemalloc
from pathlib import Path

import numpy as np

from minigan import Tensor, backend, gan

CONFIG = gan.CONFIGS["reference"]
MB = 2 ** 20


def players_and_batches(batch_size: int, seed: int = 0):
    backend.manual_seed(seed)
    G, D = gan.build_generator(CONFIG), gan.build_discriminator(CONFIG)
    opt_G, opt_D = gan.build_optimizers(CONFIG, G, D)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (batch_size, 784)).astype(np.float32)
    z_d, z_g = (rng.standard_normal((batch_size, CONFIG.noise_dim), dtype=np.float32) for _ in range(2))
    return (G, D, opt_G, opt_D), (x, z_d, z_g)


def one_iteration(players, batches):
    G, D, opt_G, opt_D = players
    x, z_d, z_g = batches
    noise = iter((z_d, z_g))
    return gan.train_iteration(G, D, opt_G, opt_D, lambda: Tensor(x), lambda: Tensor(next(noise)), 1, CONFIG.loss)


def persistent_bytes(players) -> dict:
    G, D, opt_G, opt_D = players
    params = G.parameters() + D.parameters()
    adam = sum(a.nbytes for opt in (opt_G, opt_D) for buffers in opt.state.values() for a in buffers if a is not None)
    return {"parameters": sum(p.data.nbytes for p in params),
            "gradients": sum(p.grad.nbytes for p in params if p.grad is not None), "adam_state": adam}


def trace(batch_size: int, top: int) -> dict:
    # Traced from before the models exist, so that parameters, gradients and Adam state show up
    # at their allocating lines too. One frame: the innermost Python line, the one that called NumPy.
    tracemalloc.start(1)
    players, batches = players_and_batches(batch_size)
    one_iteration(players, batches)  # warm-up: Adam state and gradients now exist
    before = persistent_bytes(players)
    tracemalloc.reset_peak()
    baseline, _ = tracemalloc.get_traced_memory()
    highest = {"bytes": baseline, "snapshot": tracemalloc.take_snapshot(), "where": "start"}

    def on_event(frame, event, arg):
        current, _ = tracemalloc.get_traced_memory()
        if current > highest["bytes"] + MB // 4:
            where = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name} ({event})"
            highest.update(bytes=current, snapshot=tracemalloc.take_snapshot(), where=where)

    sys.setprofile(on_event)
    try:
        one_iteration(players, batches)
    finally:
        sys.setprofile(None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    lines = []
    for stat in highest["snapshot"].statistics("lineno")[:top]:
        frame = stat.traceback[0]
        lines.append({"where": f"{Path(frame.filename).parent.name}/{Path(frame.filename).name}:{frame.lineno}",
                      "mb": stat.size / MB, "blocks": stat.count})
    return {"batch_size": batch_size, "alive_before_mb": {k: v / MB for k, v in before.items()},
            "traced_before_mb": baseline / MB, "traced_peak_mb": peak / MB,
            "snapshot_mb": highest["bytes"] / MB, "snapshot_where": highest["where"], "top_lines": lines}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 8192])
    parser.add_argument("--top", type=int, default=12, help="source lines listed per batch size")
    args = parser.parse_args(argv)
    for batch_size in args.batch_sizes:
        result = trace(batch_size, args.top)
        alive = result["alive_before_mb"]
        print(f"\nB = {batch_size}: alive before the iteration {result['traced_before_mb']:.1f} MB "
              f"(parameters {alive['parameters']:.1f}, gradients kept from the last step {alive['gradients']:.1f}, "
              f"Adam state {alive['adam_state']:.1f}); traced peak {result['traced_peak_mb']:.1f} MB")
        below = result["traced_peak_mb"] - result["snapshot_mb"]
        print(f"  snapshot at {result['snapshot_mb']:.1f} MB ({below:.1f} MB below the peak), "
              f"taken at {result['snapshot_where']}; alive by allocating line:")
        for line in result["top_lines"]:
            print(f"    {line['mb']:8.1f} MB  {line['blocks']:5d} arrays  {line['where']}")


if __name__ == "__main__":
    main()
