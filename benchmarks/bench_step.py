"""Time one training iteration of the `reference` GAN: minigan against PyTorch.

One iteration is Algorithm 1's inner loop: k discriminator steps, then one generator step, each
with its Adam update, in float32.

    python benchmarks/bench_step.py --device cpu                        # B = 64, 128, 1024, 8192
    python benchmarks/bench_step.py --device cpu --batch-sizes 64 128 1024 --iters 60
    python benchmarks/bench_step.py --device cuda                       # adds TF32 and CUDA-graph rows

Rows: "minigan" (gan.train_iteration, the readable path), "torch" (benchmarks/torch_reference.py,
eager), and "minigan fast" when minigan.fast.FusedTrainer exists. On the CPU also "GEMMs alone":
the fused iteration's matrix products replayed with nothing else, a floor under any NumPy step
that runs them, and "torch GEMMs alone": the same products through torch.mm. Each training row
then reports its time above its own library's GEMMs (minigan rows above "GEMMs alone", torch
above "torch GEMMs alone"): framework work compared with framework work, whatever the BLAS.
On CUDA also "minigan TF32" and "torch TF32" (float32 storage, TF32 tensor-core
GEMMs), "minigan fast TF32", and "torch cuda graph": the whole iteration captured once with
torch.cuda.graph and capturable Adam, then replayed, the strongest torch peer. Every row records
whether it ran as a captured CUDA graph (`captured` in the JSON); a fast row that should have
been captured and ran eagerly is marked EAGER in the table.

Needs PyTorch, the peer it is timed against: pip install -e ".[bench]" (on a machine with a CUDA
build of torch already, keep that one; see docs/training.md, "On a GPU").

Method, chosen so that the numbers compare like with like:
- every implementation starts from the same weights (minigan's, copied into torch) and trains on
  the same k data batches and k + 1 noise batches, made once and reused, so that sampling (whose
  cost differs between libraries and is not what is measured) stays outside the clock;
- warm-up iterations first (Adam's state, cuBLAS handles, allocator pools, graph capture);
- then blocks of `--block` iterations, alternating between implementations (and reversing the
  order every round) in one process, so that drift in a shared machine's load hits all of them;
- each iteration is timed on its own with time.perf_counter, the GPU synchronised before both
  clock readings; we report the median and the interquartile range;
- on CPU, NumPy's BLAS and torch use the same number of threads (`--threads`, default all cores
  this process may use);
- peak memory: on CPU, the growth of the process's peak resident set (VmHWM) over building the
  models and running 3 iterations, each implementation in a fresh subprocess; on CUDA, the peak
  bytes in use from the allocator over the same span (torch.cuda.max_memory_allocated, and a CuPy
  memory hook for minigan). Both count weights, gradients, Adam state and working memory.

What ran is printed before the timing and kept in the JSON (machine.blas, machine.cpu): NumPy's
BLAS as threadpoolctl reports it (library, version, kernel architecture, threads), torch's BLAS
and CPU capability, the CPU's vector extensions, and every BLAS/OpenMP variable the user set.
A kernel chosen by a variable (OPENBLAS_CORETYPE, MKL_DEBUG_CPU_TYPE, ...) is marked PINNED.

Results: a table on stdout, and benchmarks/results/bench_step-<device>-<time>[-<kernel>].json and
.png, where on the CPU <kernel> is NumPy's BLAS kernel, with "-pinned" when a variable chose it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

# OpenBLAS reads its thread count once, when NumPy loads it. So this script reads --threads and
# sets the thread variables before anything imports NumPy (minigan and torch both do); the full
# parser, with minigan.cli's checks, runs after the imports.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# The environment as the user set it, before this script sets the thread variables.
ENVIRONMENT_AT_START = dict(os.environ)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def requested_threads(argv) -> int | None:
    """--threads N from the command line when N is a positive integer, else None (parse_args
    reports a bad value later, in one line)."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--threads", default=None)
    known, _ = early.parse_known_args(argv)
    try:
        return int(known.threads) if int(known.threads) > 0 else None
    except (TypeError, ValueError):
        return None


THREADS = (requested_threads(sys.argv[1:]) if __name__ == "__main__" else None) or usable_cores()
if "numpy" not in sys.modules:
    for _name in THREAD_VARIABLES:
        os.environ[_name] = str(THREADS)

import contextlib  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

try:
    import torch  # noqa: E402
except ImportError as _error:  # one line naming the extra, not a traceback
    raise SystemExit(f"bench_step: PyTorch, the peer this benchmark times against, is missing "
                     f"({' '.join(str(_error).split())}); install it with pip install -e \".[bench]\"") from None

import minigan  # noqa: E402
from minigan import Tensor, backend, cli, gan  # noqa: E402
from minigan.atomic import atomic_write  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_reference  # noqa: E402
from machine import blas_environment, blas_header, cpu_description, numpy_blas, pinned_kernels, torch_blas  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a mistake reported as one line (no usage block): "bench_step.py: error: ..."."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv=None):
    """The command line, every value checked before any work: a mistake is one line naming it."""
    parser = OneLineParser(description=__doc__.split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--batch-sizes", type=cli.positive_int, nargs="+", default=[64, 128, 1024, 8192])
    parser.add_argument("--iters", type=cli.positive_int, default=50,
                        help="timed iterations per implementation and batch size (default 50)")
    parser.add_argument("--min-iters", type=cli.positive_int, default=8,
                        help="never fewer timed iterations than this, whatever the time budget (default 8)")
    parser.add_argument("--time-budget", type=cli.positive_float, default=15.0,
                        help="seconds of timed iterations per implementation and batch size; fewer "
                             "than --iters are run where they would take longer (default 15)")
    parser.add_argument("--warmup", type=cli.nonnegative_int, default=5,
                        help="untimed iterations first (default 5; at least 1 always runs)")
    parser.add_argument("--block", type=cli.positive_int, default=5,
                        help="iterations in a row before switching implementation (default 5)")
    parser.add_argument("--threads", type=cli.positive_int, default=None,
                        help="CPU threads for NumPy's BLAS and for torch (default: all usable cores)")
    parser.add_argument("--k", type=cli.positive_int, default=1, help="discriminator steps per iteration (default 1)")
    parser.add_argument("--loss", default="nonsaturating", choices=["nonsaturating", "minimax"])
    parser.add_argument("--seed", type=cli.seed_int, default=0)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--baseline", metavar="CHECKOUT", default=None,
                        help="also time the readable path of the minigan in this other checkout (a folder "
                             "holding minigan/), as the row 'minigan baseline', in the same run")
    parser.add_argument("--out-dir", default=None, help="default: benchmarks/results next to this file")
    parser.add_argument("--probe-memory", default=None, help=argparse.SUPPRESS)  # internal: CPU probe
    return parser.parse_args(argv)


def limit_threads(threads: int) -> str:
    """Give NumPy's BLAS and torch `threads` threads; return how the BLAS limit was set."""
    torch.set_num_threads(threads)
    if importlib.util.find_spec("threadpoolctl") is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
        return "threadpoolctl"
    return "environment variables " + "/".join(THREAD_VARIABLES) + " set before NumPy was imported"


# --- what every implementation trains on -------------------------------------------------------


@dataclass
class Setup:
    batch_size: int
    k: int
    loss: str
    device: str
    weights: dict  # {"G": state_dict, "D": state_dict}, minigan's layout, float32
    data: list  # k data batches, (B, 784) float32 in [-1, 1]
    noise: list  # k + 1 noise batches, (B, 100) float32


def make_setup(batch_size, k, loss, device, seed) -> Setup:
    backend.manual_seed(seed)
    config = gan.CONFIGS["reference"]
    G, D = gan.build_generator(config), gan.build_discriminator(config)
    rng = np.random.default_rng(seed)
    data = [rng.uniform(-1, 1, (batch_size, 784)).astype(np.float32) for _ in range(k)]
    noise = [rng.standard_normal((batch_size, 100), dtype=np.float32) for _ in range(k + 1)]
    return Setup(batch_size, k, loss, device, {"G": G.state_dict(), "D": D.state_dict()}, data, noise)


# --- the implementations -----------------------------------------------------------------------


class Unavailable(Exception):
    """This implementation cannot run here (a missing module, no GPU); the message says why."""


@dataclass
class Runner:
    name: str
    iteration: Callable[[], object]  # one training iteration; may return before a GPU is done
    synchronize: Callable[[], None]
    peer: str | None = None  # the row this one's time is divided by in the ratio column
    # Switched on around each block of iterations, outside the clock (TF32 on or off).
    precision: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    keep: list = field(default_factory=list)  # objects the closures need alive
    captured: Callable[[], bool] = lambda: False  # whether the latest iteration ran as a CUDA graph
    graph_expected: bool = False  # a row meant to run captured: running eagerly is a failure to see
    mode: Callable[[], str] | None = None  # how it ran, in words (the fast rows)
    measure_memory: bool = True  # False for a row that is not a training step (the GEMM floor)


def _synchronize_cupy():
    import cupy

    cupy.cuda.runtime.deviceSynchronize()


def _synchronize_torch():
    torch.cuda.synchronize()


def _nothing():
    pass


@contextlib.contextmanager
def cupy_tf32(enabled: bool):
    """CuPy's float32 GEMMs with TF32 tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32) or without."""
    import cupy
    from cupy._core import _routines_linalg as linalg

    tf32, default = getattr(linalg, "COMPUTE_TYPE_TF32", 7), getattr(linalg, "COMPUTE_TYPE_DEFAULT", 1)
    previous = linalg.get_compute_type(cupy.float32)
    linalg.set_compute_type(cupy.float32, tf32 if enabled else default)
    try:
        yield
    finally:
        linalg.set_compute_type(cupy.float32, previous)


@contextlib.contextmanager
def torch_tf32(enabled: bool):
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if enabled else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def _minigan_players(setup: Setup):
    config = gan.CONFIGS["reference"]
    G = gan.build_generator(config, device=setup.device)
    D = gan.build_discriminator(config, device=setup.device)
    G.load_state_dict(setup.weights["G"])
    D.load_state_dict(setup.weights["D"])
    return G, D


def make_minigan(setup: Setup, tf32: bool = False) -> Runner:
    G, D = _minigan_players(setup)
    opt_G, opt_D = gan.build_optimizers(gan.CONFIGS["reference"], G, D)
    xs = [Tensor(x, device=setup.device) for x in setup.data]
    zs = [Tensor(z, device=setup.device) for z in setup.noise]

    def iteration():
        data, noise = iter(xs), iter(zs)
        return gan.train_iteration(G, D, opt_G, opt_D, lambda: next(data), lambda: next(noise),
                                   setup.k, setup.loss)

    cuda = setup.device != "cpu"
    return Runner("minigan TF32" if tf32 else "minigan", iteration,
                  _synchronize_cupy if cuda else _nothing, peer="torch TF32" if tf32 else "torch",
                  precision=(lambda: cupy_tf32(tf32)) if cuda else contextlib.nullcontext)


def load_baseline(checkout) -> object:
    """The minigan package of another checkout, imported as `minigan_baseline` beside this one, so
    that a change's cost is measured in the same process, interleaved with the current code."""
    init = Path(checkout).resolve() / "minigan" / "__init__.py"
    if not init.is_file():
        raise SystemExit(f"error: --baseline {checkout}: no minigan/__init__.py there")
    if "minigan_baseline" not in sys.modules:
        spec = importlib.util.spec_from_file_location("minigan_baseline", init,
                                                      submodule_search_locations=[str(init.parent)])
        module = importlib.util.module_from_spec(spec)
        sys.modules["minigan_baseline"] = module
        spec.loader.exec_module(module)
    return importlib.import_module("minigan_baseline.gan")


def baseline_description(checkout) -> str | None:
    """The --baseline checkout's commit, when it is a git checkout (its folder names this machine)."""
    if checkout is None:
        return None
    try:
        head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = ""
    return f"commit {head}" if head else "a checkout without git"


def make_minigan_baseline(setup: Setup, checkout) -> Runner:
    """The readable path (gan.train_iteration) of the --baseline checkout, on the same weights and batches."""
    base = load_baseline(checkout)
    config = base.CONFIGS["reference"]
    G, D = base.build_generator(config, device=setup.device), base.build_discriminator(config, device=setup.device)
    G.load_state_dict(setup.weights["G"])
    D.load_state_dict(setup.weights["D"])
    opt_G, opt_D = base.build_optimizers(config, G, D)
    xs = [base.Tensor(x, device=setup.device) for x in setup.data]
    zs = [base.Tensor(z, device=setup.device) for z in setup.noise]

    def iteration():
        data, noise = iter(xs), iter(zs)
        return base.train_iteration(G, D, opt_G, opt_D, lambda: next(data), lambda: next(noise),
                                    setup.k, setup.loss)

    return Runner("minigan baseline", iteration, _synchronize_cupy if setup.device != "cpu" else _nothing,
                  peer="torch", measure_memory=False)


def make_minigan_fast(setup: Setup, tf32: bool = False) -> Runner:
    try:
        from minigan.fast import FusedTrainer
    except (ImportError, AttributeError) as error:
        raise Unavailable(f"minigan.fast.FusedTrainer not importable ({error})") from None
    G, D = _minigan_players(setup)
    xs = [backend.to_device(x, setup.device) for x in setup.data]
    zs = [backend.to_device(z, setup.device) for z in setup.noise]
    cuda = setup.device != "cpu"
    if tf32 and not cuda:
        raise Unavailable("TF32 needs a GPU")
    try:  # one iteration here, so that a trainer that cannot run on this device says so now
        trainer = FusedTrainer(G, D, k=setup.k, loss=setup.loss, lr=2e-4, betas=(0.5, 0.999), tf32=tf32)
        trainer.iteration(xs, zs)
    except Exception as error:  # e.g. a CUDA-only trainer asked for the CPU
        raise Unavailable(f"FusedTrainer failed here: {type(error).__name__}: {error}") from None
    name = "minigan fast TF32" if tf32 else "minigan fast"
    peer = ("torch TF32" if tf32 else "torch cuda graph") if cuda else "torch"
    return Runner(name, lambda: trainer.iteration(xs, zs), _synchronize_cupy if cuda else _nothing,
                  peer=peer, keep=[trainer], captured=lambda: trainer.captured, graph_expected=cuda,
                  mode=lambda: trainer.mode)


def fused_products(setup: Setup):
    """(trainer, products): one fused iteration run with its matrix products recorded, each as
    (a, b, out, trans_a, trans_b) on the trainer's own buffers, in the order they ran."""
    if setup.device != "cpu":
        raise Unavailable("the GEMM floor is measured on the CPU (NumPy's BLAS)")
    from minigan.fast import FusedTrainer

    G, D = _minigan_players(setup)
    trainer = FusedTrainer(G, D, k=setup.k, loss=setup.loss, lr=2e-4, betas=(0.5, 0.999))
    linalg, products = trainer.linalg, []

    class Recording:
        column_sum = staticmethod(linalg.column_sum)

        @staticmethod
        def matmul(a, b, out, trans_a=False, trans_b=False):
            products.append((a, b, out, trans_a, trans_b))
            linalg.matmul(a, b, out, trans_a, trans_b)

    trainer.linalg = Recording
    trainer.iteration(setup.data, setup.noise)
    trainer.linalg = linalg
    return trainer, products


def make_gemm_floor(setup: Setup) -> Runner:
    """The GEMMs of one fused iteration and nothing else: a floor under any NumPy step.

    One fused iteration runs with its matrix products recorded (operands, output buffer,
    transposes); the row then replays those products alone, on the trainer's own buffers, through
    the same np.matmul calls. No activation, loss, bias sum or Adam runs. Algorithm 1 needs every
    one of these products, so an implementation that runs them through NumPy's BLAS cannot be
    faster than this row: where its ratio to torch is above a target, such code cannot meet it.
    """
    trainer, products = fused_products(setup)
    linalg = trainer.linalg

    def replay():
        for a, b, out, trans_a, trans_b in products:
            linalg.matmul(a, b, out, trans_a, trans_b)

    replay()
    if not all(np.isfinite(out).all() for _, _, out, _, _ in products):
        raise Unavailable("the replayed GEMMs overflowed, so their time would not be a GEMM's")
    return Runner("GEMMs alone", replay, _nothing, peer="torch", keep=[trainer, products],
                  mode=lambda: f"{len(products)} products replayed, nothing else", measure_memory=False)


def make_torch_gemm_floor(setup: Setup) -> Runner:
    """torch's floor: the same products as "GEMMs alone", same shapes and transposes, through
    torch.mm with out= on tensors that share the fused trainer's buffers (torch.from_numpy).
    torch's step time less this row is torch's own work above its BLAS, comparable with the fused
    step's time less "GEMMs alone" whatever the two BLAS libraries are."""
    trainer, products = fused_products(setup)
    tensors = []
    for a, b, out, trans_a, trans_b in products:
        a_t, b_t = torch.from_numpy(a), torch.from_numpy(b)
        tensors.append((a_t.t() if trans_a else a_t, b_t.t() if trans_b else b_t, torch.from_numpy(out)))

    def replay():
        for a, b, out in tensors:
            torch.mm(a, b, out=out)

    replay()
    if not all(np.isfinite(out).all() for _, _, out, _, _ in products):
        raise Unavailable("the replayed GEMMs overflowed, so their time would not be a GEMM's")
    return Runner("torch GEMMs alone", replay, _nothing, peer="torch", keep=[trainer, products, tensors],
                  mode=lambda: f"{len(tensors)} products through torch.mm, nothing else", measure_memory=False)


# Each row's own GEMMs: the floor its overhead is measured above.
GEMM_FLOORS = {"minigan": "GEMMs alone", "minigan fast": "GEMMs alone", "torch": "torch GEMMs alone"}


def overhead_above_gemms(runner: Runner, medians: dict) -> dict:
    """The row's median time above its own GEMMs (GEMM_FLOORS), in ms and as a fraction of them:
    the framework's work (activations, losses, bias sums, Adam, Python, copies) on any BLAS."""
    floor = GEMM_FLOORS.get(runner.name)
    if floor not in medians:
        return {}
    above = medians[runner.name] - medians[floor]
    return {"gemm_floor": floor, "gemm_floor_ms": medians[floor] * 1e3, "overhead_ms": above * 1e3,
            "overhead_fraction": above / medians[floor]}


def _torch_players(setup: Setup, capturable=False):
    G = torch_reference.build_generator(device=setup.device)
    D = torch_reference.build_discriminator(device=setup.device)
    torch_reference.load_minigan_weights(G, setup.weights["G"])
    torch_reference.load_minigan_weights(D, setup.weights["D"])
    opt_G, opt_D = torch_reference.build_optimizers(G, D, capturable=capturable)
    xs = [torch.from_numpy(x).to(setup.device) for x in setup.data]
    zs = [torch.from_numpy(z).to(setup.device) for z in setup.noise]

    def iteration():
        data, noise = iter(xs), iter(zs)
        return torch_reference.train_iteration(G, D, opt_G, opt_D, lambda: next(data), lambda: next(noise),
                                               setup.k, setup.loss)

    return iteration, (G, D, opt_G, opt_D, xs, zs)


def make_torch(setup: Setup, tf32: bool = False) -> Runner:
    iteration, keep = _torch_players(setup)
    cuda = setup.device != "cpu"
    return Runner("torch TF32" if tf32 else "torch", iteration,
                  _synchronize_torch if cuda else _nothing, keep=list(keep),
                  precision=(lambda: torch_tf32(tf32)) if cuda else contextlib.nullcontext)


def make_torch_cuda_graph(setup: Setup) -> Runner:
    """The whole iteration captured once in a CUDA graph, then replayed: no Python, no launches.

    Adam must be `capturable` (its step count lives on the GPU; a Python number would be frozen
    into the graph). Inputs are static buffers; real training would copy each new batch into them.
    """
    if setup.device == "cpu":
        raise Unavailable("CUDA graphs need a GPU")
    iteration, keep = _torch_players(setup, capturable=True)
    with torch_tf32(False):
        # Warm up on a side stream, as torch's docs ask: lazy initialisation (cuBLAS handles,
        # Adam's state) must happen before capture, and not on the capturing stream.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                iteration()
        torch.cuda.current_stream().wait_stream(side)
        # zero_grad(set_to_none=True) inside the steps makes backward allocate the gradients
        # from the graph's private pool during capture, at addresses every replay reuses.
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            iteration()
    return Runner("torch cuda graph", graph.replay, _synchronize_torch, keep=[graph, *keep],
                  captured=lambda: True, graph_expected=True)


def factories(device: str, baseline=None) -> dict[str, Callable[[Setup], Runner]]:
    """Every implementation to time on `device`, by row name, in table order."""
    rows = {"minigan": make_minigan, "minigan fast": make_minigan_fast, "torch": make_torch}
    if baseline is not None:
        rows["minigan baseline"] = lambda setup: make_minigan_baseline(setup, baseline)
    if device == "cpu":
        rows["GEMMs alone"] = make_gemm_floor
        rows["torch GEMMs alone"] = make_torch_gemm_floor
    else:
        rows.update({
            "minigan TF32": lambda setup: make_minigan(setup, tf32=True),
            "minigan fast TF32": lambda setup: make_minigan_fast(setup, tf32=True),
            "torch TF32": lambda setup: make_torch(setup, tf32=True),
            "torch cuda graph": make_torch_cuda_graph,
        })
    return rows


# --- peak memory -------------------------------------------------------------------------------


def _proc_status_bytes(field_name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024  # the value is in kB
    raise OSError(f"/proc/self/status has no {field_name}")


def warm_up_libraries() -> None:
    """Pay each library's one-time costs (torch's optimizer imports a good deal on first use,
    BLAS allocates its buffers) on a tiny net, so that the memory probe does not count them."""
    layer = torch.nn.Linear(4, 4)
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.zeros(2, 4)).sum().backward()
    optimizer.step()
    weight = Tensor(np.zeros((4, 4), np.float32), requires_grad=True)
    (Tensor(np.zeros((2, 4), np.float32)) @ weight).sum().backward()


def probe_cpu_memory(factory, setup: Setup) -> dict:
    """Run in a fresh process: growth of peak RSS over building the models and 3 iterations."""
    warm_up_libraries()
    gc.collect()
    baseline = _proc_status_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM, the peak RSS, to the current RSS (Linux >= 4.0)
    runner = factory(setup)
    for _ in range(3):
        runner.iteration()
    return {"peak_memory_mb": (_proc_status_bytes("VmHWM") - baseline) / 2**20,
            "memory_method": "peak RSS growth (VmHWM) over model build + 3 iterations, fresh process"}


def cpu_memory_in_subprocess(name: str, args, batch_size: int) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--device", "cpu",
               "--threads", str(THREADS), "--batch-sizes", str(batch_size), "--k", str(args.k),
               "--loss", args.loss, "--seed", str(args.seed), "--probe-memory", name]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, json.JSONDecodeError, IndexError) as error:
        return {"peak_memory_mb": None, "memory_method": f"probe failed: {error!r}"}


def cupy_peak_hook():
    """A CuPy memory hook that records the peak bytes taken from the pool while it is active,
    counted from when it was entered (the equivalent of torch.cuda.max_memory_allocated)."""
    import cupy

    class PeakHook(cupy.cuda.MemoryHook):
        name = "bench_step_peak"

        def __init__(self):
            self.live = self.peak = 0

        def malloc_postprocess(self, **kwargs):
            self.live += kwargs["mem_size"]
            self.peak = max(self.peak, self.live)

        def free_postprocess(self, **kwargs):
            self.live -= kwargs["mem_size"]

    return PeakHook()


def build_with_gpu_memory(name: str, factory, setup: Setup) -> tuple[Runner, dict]:
    """Build a GPU runner and run 3 iterations, measuring the peak memory the allocator hands out."""
    torch.cuda.synchronize()
    if name.startswith("torch"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        runner = factory(setup)
        with runner.precision():
            for _ in range(3):
                runner.iteration()
        runner.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
        method = "torch.cuda.max_memory_allocated over build + 3 iterations"
    else:
        hook = cupy_peak_hook()
        with hook:
            runner = factory(setup)
            with runner.precision():
                for _ in range(3):
                    runner.iteration()
            runner.synchronize()
        peak = hook.peak
        method = "CuPy memory-pool bytes in use (MemoryHook) over build + 3 iterations"
    return runner, {"peak_memory_mb": peak / 2**20, "memory_method": method}


# --- timing ------------------------------------------------------------------------------------


def timed_iteration(runner: Runner) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for one iteration. The CPU time, summed over
    threads, is the steadier number when other processes compete for the cores."""
    runner.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    runner.iteration()
    runner.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_interleaved(runners: list[Runner], args) -> tuple[dict[str, list], int]:
    """Warm up each runner, then alternate blocks of timed iterations; (wall, CPU) seconds each."""
    slowest = 0.0
    for runner in runners:
        with runner.precision():
            for _ in range(max(args.warmup, 1)):
                last, _ = timed_iteration(runner)
        slowest = max(slowest, last)
    count = max(args.min_iters, min(args.iters, int(args.time_budget / max(slowest, 1e-9))))
    times = {runner.name: [] for runner in runners}
    for round_index in range(math.ceil(count / args.block)):
        order = runners if round_index % 2 == 0 else runners[::-1]
        for runner in order:
            todo = min(args.block, count - len(times[runner.name]))
            with runner.precision():
                times[runner.name].extend(timed_iteration(runner) for _ in range(todo))
    return times, count


def summarize(measured: list[tuple[float, float]]) -> dict:
    ms = np.asarray([wall for wall, _ in measured]) * 1e3
    cpu_ms = np.asarray([cpu for _, cpu in measured]) * 1e3
    return {"median_ms": float(np.median(ms)), "p25_ms": float(np.percentile(ms, 25)),
            "p75_ms": float(np.percentile(ms, 75)), "min_ms": float(ms.min()), "mean_ms": float(ms.mean()),
            "cpu_median_ms": float(np.median(cpu_ms)), "iterations": len(ms),
            "times_ms": [round(float(t), 4) for t in ms], "cpu_times_ms": [round(float(t), 4) for t in cpu_ms]}


# --- the machine -------------------------------------------------------------------------------


def blas_description(environ=None) -> dict:
    """Which BLAS kernels run here and why: NumPy's BLAS (threadpoolctl), torch's BLAS and CPU
    capability, the BLAS/OpenMP variables the user set (`environ`, default the environment this
    script started with), the thread variables this script set, and the kernels a variable pinned.
    Asked after limit_threads, so that the thread counts are the ones the timed code runs with."""
    environment = blas_environment(ENVIRONMENT_AT_START if environ is None else environ)
    return {"numpy": numpy_blas(), "torch": torch_blas(torch), "environment": environment,
            "set_by_bench_step": {name: os.environ.get(name) for name in THREAD_VARIABLES},
            "pinned": pinned_kernels(environment)}


def machine_description(device: str, thread_control: str, environ=None) -> dict:
    versions = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                "minigan": minigan.__version__}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        versions["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no dict mode
        pass
    cpu = cpu_description()
    description = {"device": device, "cpu_model": cpu["model"], "cpu": cpu, "usable_cores": usable_cores(),
                   "threads": THREADS, "thread_control": thread_control, "platform": platform.platform(),
                   "versions": versions, "blas": blas_description(environ)}
    if device != "cpu":
        import cupy

        description["gpu"] = torch.cuda.get_device_name(torch.device(device))
        versions["cupy"] = cupy.__version__
        versions["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    return description


def header_lines(machine: dict, load: float) -> list[str]:
    """What the run prints before timing: the CPU and its vector extensions, the BLAS kernels of
    NumPy and torch (a kernel pinned by an environment variable says PINNED), the variables set."""
    blas = machine["blas"]
    return [f"CPU: {machine['cpu_model']} (vendor {machine['cpu']['vendor']}, family {machine['cpu']['family']} "
            f"model {machine['cpu']['model_number']}), vector extensions: "
            + (" ".join(machine["cpu"]["vector_extensions"]) or "none listed"),
            f"threads: {THREADS} for NumPy's BLAS ({machine['thread_control']}) and torch; load average {load:.1f}",
            *blas_header(blas["numpy"], blas["torch"], blas["environment"])]


def kernel_label(machine: dict) -> str:
    """NumPy's BLAS kernel for titles and file names: "Haswell", "Haswell-pinned", "unknown"."""
    architecture = machine["blas"]["numpy"].get("architecture") or "unknown"
    return architecture + ("-pinned" if any("NumPy" in pin for pin in machine["blas"]["pinned"]) else "")


# --- output ------------------------------------------------------------------------------------


def ran_eager(row: dict) -> bool:
    """A row meant to replay a CUDA graph that ran its timed iterations eagerly instead."""
    return bool(row.get("graph_expected")) and not row.get("captured")


def print_table(results: list[dict], batch_sizes: list[int], title: str) -> None:
    names = list(dict.fromkeys(r["implementation"] for r in results))
    by_key = {(r["implementation"], r["batch_size"]): r for r in results}

    def print_rows(header, cell_of):
        cells = {(n, b): (cell_of(by_key[n, b]) if (n, b) in by_key else "—") for n in names for b in batch_sizes}
        width = max(len(c) for c in [*cells.values(), "B=" + str(max(batch_sizes))]) + 3
        print(header)
        print(f"{'implementation':<18}" + "".join(f"{'B=' + str(b):>{width}}" for b in batch_sizes))
        for n in names:
            print(f"{n:<18}" + "".join(f"{cells[n, b]:>{width}}" for b in batch_sizes))

    def time_cell(r):
        cell = f"{r['median_ms']:.2f} [{r['p25_ms']:.1f}-{r['p75_ms']:.1f}]"
        cell += f" ({r['ratio_to_peer']:.2f}x)" if r.get("ratio_to_peer") is not None else ""
        return cell + (" EAGER" if ran_eager(r) else "")

    print(f"\n{title}")
    print_rows("median ms per iteration [interquartile range] (ratio to the peer row)", time_cell)
    peers = {r["implementation"]: r["peer"] for r in results if r.get("peer")}
    if peers:
        print("peers: " + ", ".join(f"{n} / {p}" for n, p in peers.items()))
    for r in results:
        if ran_eager(r):
            print(f"WARNING: {r['implementation']} at B={r['batch_size']} ran EAGER, not as a CUDA graph: "
                  f"{r.get('mode') or 'no reason recorded'}")
    if any(r.get("overhead_ms") is not None for r in results):
        print_rows("\ntime above the row's own GEMMs, median ms (% of those GEMMs' time)",
                   lambda r: "—" if r.get("overhead_ms") is None
                   else f"{r['overhead_ms']:.2f} ({100 * r['overhead_fraction']:.0f}%)")
        print("own GEMMs: " + ", ".join(f"{n} / {f}" for n, f in GEMM_FLOORS.items() if n in names))
    print_rows("\nCPU time of the process per iteration, median ms "
               "(all threads; the steadier number on a busy machine)", lambda r: f"{r['cpu_median_ms']:.2f}")
    if any(r.get("peak_memory_mb") is not None for r in results):
        print_rows("\npeak memory, MB",
                   lambda r: "—" if r.get("peak_memory_mb") is None else f"{r['peak_memory_mb']:.0f}")
        methods = sorted({r["memory_method"] for r in results if r.get("memory_method")})
        print("memory: " + "; ".join(methods))


def plot(results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["implementation"] for r in results))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in names:
        rows = sorted((r for r in results if r["implementation"] == name), key=lambda r: r["batch_size"])
        sizes = [r["batch_size"] for r in rows]
        left.errorbar(sizes, [r["median_ms"] for r in rows], marker="o", capsize=3, label=name,
                      yerr=[[r["median_ms"] - r["p25_ms"] for r in rows], [r["p75_ms"] - r["median_ms"] for r in rows]])
        ratios = [(r["batch_size"], r["ratio_to_peer"]) for r in rows if r.get("ratio_to_peer") is not None]
        if ratios:
            right.plot(*zip(*ratios), marker="o", label=f"{name} / {rows[0]['peer']}")
    left.set(xscale="log", yscale="log", xlabel="batch size", ylabel="ms per iteration (median, IQR)")
    right.axhline(1.0, color="gray", linewidth=0.8)
    right.set(xscale="log", xlabel="batch size", ylabel="time ratio (lower is faster)")
    sizes = sorted({r["batch_size"] for r in results})
    for axis in (left, right):
        axis.set_xticks(sizes, [str(b) for b in sizes], minor=False)
        axis.set_xticks([], minor=True)
        axis.grid(True, which="major", alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


# --- main --------------------------------------------------------------------------------------


def main(argv=None) -> int:
    global THREADS
    args = parse_args(argv)
    THREADS = args.threads or THREADS
    device = backend.normalize_device(args.device)
    out_dir = cli.check_output_dir(args.out_dir or RESULTS_DIR, "--out-dir") if not args.probe_memory else None
    if device != "cpu":
        backend.import_cupy()  # one clear error if CuPy or the GPU is missing
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: this torch build has no CUDA")
        torch.set_float32_matmul_precision("highest")  # fp32 GEMMs unless a row asks for TF32
    thread_control = limit_threads(THREADS)
    rows = factories(device, args.baseline)

    if args.probe_memory:  # internal: we are the fresh process of cpu_memory_in_subprocess
        setup = make_setup(args.batch_sizes[0], args.k, args.loss, device, args.seed)
        print(json.dumps(probe_cpu_memory(rows[args.probe_memory], setup)))
        return 0

    machine = machine_description(device, thread_control)
    started = datetime.datetime.now().astimezone()
    load_before = os.getloadavg()
    print(f"bench_step: reference GAN, k={args.k}, {args.loss}, float32, device {device}"
          + (f" ({machine['gpu']})" if "gpu" in machine else ""))
    print("\n".join(header_lines(machine, load_before[0])))
    if device == "cpu" and load_before[0] + THREADS > usable_cores() + 0.5:
        print(f"WARNING: other processes are busy (load {load_before[0]:.1f} on {usable_cores()} cores): "
              f"wall times will be unreliable, the CPU-time table less so")

    results, skipped = [], {}
    for batch_size in args.batch_sizes:
        setup = make_setup(batch_size, args.k, args.loss, device, args.seed)
        runners, memory = [], {}
        for name, factory in rows.items():
            if name in skipped:
                continue
            try:
                if device != "cpu" and not args.no_memory:
                    runner, memory[name] = build_with_gpu_memory(name, factory, setup)
                else:
                    runner = factory(setup)
            except Unavailable as reason:
                skipped[name] = str(reason)
                print(f"  {name}: skipped, {reason}")
                continue
            runners.append(runner)
        times, count = time_interleaved(runners, args)
        medians = {name: float(np.median([wall for wall, _ in t])) for name, t in times.items()}
        for runner in runners:
            row = {"implementation": runner.name, "batch_size": batch_size, "peer": runner.peer,
                   **summarize(times[runner.name])}
            row["ratio_to_peer"] = (medians[runner.name] / medians[runner.peer]
                                    if runner.peer in medians else None)
            row.update(overhead_above_gemms(runner, medians))
            # Asked after the timed iterations: did the last of them replay a CUDA graph?
            row["captured"], row["graph_expected"] = bool(runner.captured()), runner.graph_expected
            if runner.mode is not None:
                row["mode"] = runner.mode()
            if device == "cpu" and not args.no_memory and runner.measure_memory:
                memory[runner.name] = cpu_memory_in_subprocess(runner.name, args, batch_size)
            row.update(memory.get(runner.name, {}))
            results.append(row)
        summary = ", ".join(f"{n} {medians[n] * 1e3:.2f} ms" for n in medians)
        print(f"  B={batch_size}: {count} timed iterations each: {summary}")
        del runners
        gc.collect()

    load_after = os.getloadavg()
    title = (f"reference GAN, one iteration = {args.k} D step(s) + 1 G step, float32, {device}"
             + (f" ({machine['gpu']})" if "gpu" in machine else f" ({machine['cpu_model']}, {THREADS} threads)")
             + (f", NumPy BLAS {kernel_label(machine)}" if device == "cpu" else "")
             + f", {started:%Y-%m-%d %H:%M}")
    print_table(results, args.batch_sizes, title)
    print(f"load average: {load_before[0]:.1f} before, {load_after[0]:.1f} after")

    # On the CPU the name carries NumPy's BLAS kernel, and whether a variable pinned it.
    stem = (f"bench_step-{device.replace(':', '')}-{started:%Y%m%d-%H%M%S}"
            + (f"-{kernel_label(machine)}" if device == "cpu" else ""))
    report = {
        "benchmark": "bench_step", "date": started.isoformat(timespec="seconds"), "machine": machine,
        "settings": {"batch_sizes": args.batch_sizes, "k": args.k, "loss": args.loss,
                     "dtype": "float32", "iters": args.iters, "min_iters": args.min_iters,
                     "time_budget_s": args.time_budget, "warmup": args.warmup, "block": args.block,
                     "seed": args.seed, "data": "fixed random batches: uniform [-1, 1] data, N(0, I) noise",
                     "baseline": baseline_description(args.baseline)},
        "load_average_1min": {"before": load_before[0], "after": load_after[0]},
        "results": results, "skipped": skipped,
    }
    json_path = out_dir / f"{stem}.json"
    atomic_write(json_path, lambda f: f.write(json.dumps(report, indent=1).encode()))
    plot(results, out_dir / f"{stem}.png", title)
    print(f"wrote {json_path} and {stem}.png")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
