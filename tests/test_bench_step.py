"""benchmarks/bench_step.py and benchmarks/machine.py: what a results file says about the BLAS that
ran, torch's GEMM floor, the overhead above each row's own GEMMs, and one-line argument errors.

Nothing here is timed: the header and machine description are built without running a benchmark.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from scripts import load_script  # tests/scripts.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def bench_step():
    pytest.importorskip("torch")
    return load_script("benchmarks/bench_step.py", "bench_step")


@pytest.fixture(scope="module")
def machine_cpu(bench_step):
    """The machine description of a CPU run, built as main() builds it (no timing). The thread
    limits that builds are put back after this module, so that no later test runs under them."""
    import torch
    from threadpoolctl import threadpool_limits

    torch_threads = torch.get_num_threads()
    with threadpool_limits(limits=None):  # on leaving: NumPy's BLAS as it was before
        yield bench_step.machine_description("cpu", bench_step.limit_threads(1))
    torch.set_num_threads(torch_threads)


def test_results_name_numpys_blas_kernel_torchs_blas_and_the_cpu(machine_cpu):
    numpy_blas = machine_cpu["blas"]["numpy"]
    assert "error" not in numpy_blas, numpy_blas
    assert numpy_blas["library"] in ("openblas", "mkl", "blis")
    assert numpy_blas["version"] and numpy_blas["architecture"]
    assert numpy_blas["threads"] == 1  # what limit_threads set, read back after it
    torch_blas = machine_cpu["blas"]["torch"]
    assert torch_blas["blas"] and torch_blas["threads"] == 1
    import torch

    assert torch_blas["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    cpu = machine_cpu["cpu"]
    assert cpu["model"] == machine_cpu["cpu_model"]
    assert isinstance(cpu["vector_extensions"], list)
    assert set(machine_cpu["blas"]["set_by_bench_step"]) == {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                             "MKL_NUM_THREADS"}


def test_a_kernel_pinned_by_a_variable_is_said_in_the_header(bench_step, machine_cpu):
    environ = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512", "OMP_PROC_BIND": "close",
               "MKL_DEBUG_CPU_TYPE": "5", "GOTO_NUM_THREADS": "2", "BLIS_ARCH_TYPE": "zen",
               "HOME": "/root", "OPENBLASX": "no underscore: not a BLAS variable", "PATH": "/bin"}
    blas = bench_step.blas_description(environ)
    assert blas["environment"] == {name: value for name, value in environ.items()
                                   if name not in ("HOME", "PATH", "OPENBLASX")}
    assert blas["pinned"] == ["NumPy's OpenBLAS kernel pinned by OPENBLAS_CORETYPE=Haswell",
                              "torch's MKL kernel pinned by MKL_DEBUG_CPU_TYPE=5"]
    machine = dict(machine_cpu, blas=blas)
    lines = bench_step.header_lines(machine, load=0.5)
    blas_line = next(line for line in lines if line.startswith("BLAS:"))
    assert "PINNED" in blas_line and "OPENBLAS_CORETYPE=Haswell" in blas_line
    assert f"kernel {blas['numpy']['architecture']}" in blas_line
    assert "OPENBLAS_L2_SIZE=512" in lines[-1] and "HOME" not in lines[-1]
    assert bench_step.kernel_label(machine) == blas["numpy"]["architecture"] + "-pinned"
    assert any(line.startswith("CPU: ") and "vector extensions" in line for line in lines)

    detected = dict(machine_cpu, blas=bench_step.blas_description({"HOME": "/root"}))
    lines = bench_step.header_lines(detected, load=0.5)
    assert "PINNED" not in "\n".join(lines) and "[kernels as detected]" in lines[2]
    assert lines[-1] == "BLAS/OpenMP environment: none set"
    assert bench_step.kernel_label(detected) == detected["blas"]["numpy"]["architecture"]


def test_vector_extensions_come_from_the_cpuinfo_flags(tmp_path):
    import machine

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
                       "model name\t: AMD EPYC\nflags\t\t: fpu sse2 sse4_2 avx avx2 fma avx512f avx512bw avx_vnni "
                       "amx_tile sha_ni\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    cpu = machine.cpu_description(str(cpuinfo))
    assert cpu["vector_extensions"] == ["amx_tile", "avx", "avx2", "avx512bw", "avx512f", "avx_vnni", "fma", "sse4_2"]
    assert (cpu["model"], cpu["vendor"], cpu["family"], cpu["model_number"]) == ("AMD EPYC", "AuthenticAMD", "26", "2")


def test_torch_gemm_floor_replays_the_same_products_through_torch_mm(bench_step):
    import torch

    setup = bench_step.make_setup(8, 1, "nonsaturating", "cpu", seed=0)
    runner = bench_step.make_torch_gemm_floor(setup)
    assert runner.name == "torch GEMMs alone" and runner.peer == "torch" and not runner.measure_memory
    trainer, products, tensors = runner.keep
    _, numpy_products = bench_step.fused_products(setup)
    assert len(tensors) == len(products) == len(numpy_products) == 34
    # The same shapes and transposes as the NumPy floor, in the same order.
    assert [(a.shape, b.shape, out.shape, ta, tb) for a, b, out, ta, tb in products] == \
           [(a.shape, b.shape, out.shape, ta, tb) for a, b, out, ta, tb in numpy_products]
    params = [trainer.G.params.copy(), trainer.D.params.copy()]
    for _, _, out, _, _ in products:
        out[...] = np.nan
    runner.iteration()
    torch_outputs = [out.copy() for _, _, out, _, _ in products]
    assert all(np.isfinite(out).all() for out in torch_outputs)  # every product written again
    assert all(np.shares_memory(out_t.numpy(), out) for (_, _, out, _, _), (_, _, out_t) in zip(products, tensors))
    # The same sequence through NumPy on the same buffers gives the same products (later products
    # read earlier ones' outputs, so the sequence is compared, not each product on its own).
    for a, b, out, trans_a, trans_b in products:
        np.matmul(a.T if trans_a else a, b.T if trans_b else b, out=out)
    for (_, _, out, _, _), torch_out in zip(products, torch_outputs):
        np.testing.assert_allclose(torch_out, out, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(trainer.G.params, params[0])  # only GEMMs ran: no Adam step
    np.testing.assert_array_equal(trainer.D.params, params[1])
    assert isinstance(tensors[0][2], torch.Tensor)
    assert bench_step.factories("cpu")["torch GEMMs alone"] is bench_step.make_torch_gemm_floor


def test_each_row_reports_its_time_above_its_own_gemms(bench_step):
    medians = {"minigan": 0.150, "minigan fast": 0.120, "torch": 0.200, "GEMMs alone": 0.100,
               "torch GEMMs alone": 0.160}
    runner = lambda name: bench_step.Runner(name, None, None)  # noqa: E731
    fast = bench_step.overhead_above_gemms(runner("minigan fast"), medians)
    assert fast["gemm_floor"] == "GEMMs alone"
    assert fast["overhead_ms"] == pytest.approx(20.0) and fast["overhead_fraction"] == pytest.approx(0.2)
    torch_row = bench_step.overhead_above_gemms(runner("torch"), medians)
    assert torch_row["gemm_floor"] == "torch GEMMs alone" and torch_row["gemm_floor_ms"] == pytest.approx(160.0)
    assert torch_row["overhead_ms"] == pytest.approx(40.0) and torch_row["overhead_fraction"] == pytest.approx(0.25)
    assert bench_step.overhead_above_gemms(runner("minigan"), medians)["overhead_ms"] == pytest.approx(50.0)
    assert bench_step.overhead_above_gemms(runner("GEMMs alone"), medians) == {}
    assert bench_step.overhead_above_gemms(runner("torch"), {"torch": 0.2}) == {}  # no floor timed


def test_the_overhead_table_is_printed(bench_step, capsys):
    row = {"median_ms": 1.0, "p25_ms": 0.9, "p75_ms": 1.1, "cpu_median_ms": 1.0, "ratio_to_peer": None}
    results = [dict(row, implementation="minigan fast", batch_size=64, overhead_ms=12.5, overhead_fraction=0.25),
               dict(row, implementation="torch", batch_size=64, overhead_ms=30.0, overhead_fraction=0.5),
               dict(row, implementation="GEMMs alone", batch_size=64)]
    bench_step.print_table(results, [64], "test")
    out = capsys.readouterr().out
    assert "time above the row's own GEMMs" in out
    assert "12.50 (25%)" in out and "30.00 (50%)" in out
    assert "minigan fast / GEMMs alone" in out and "torch / torch GEMMs alone" in out


@pytest.mark.parametrize("argv, message", [
    (["--batch-sizes", "64", "0"], "argument --batch-sizes: must be a positive integer, got 0"),
    (["--block", "0"], "argument --block: must be a positive integer, got 0"),
    (["--iters", "-1"], "argument --iters: must be a positive integer, got -1"),
    (["--threads", "two"], "argument --threads: must be an integer, got 'two'"),
    (["--time-budget", "0"], "argument --time-budget: must be a finite number > 0, got 0"),
    (["--warmup", "-2"], "argument --warmup: must be a non-negative integer, got -2"),
    (["--seed", "-1"], "argument --seed: must be an integer in [0, 2**32), got -1"),
])
def test_a_bad_argument_is_one_line_naming_it(bench_step, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        bench_step.parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err


def test_an_output_folder_that_is_a_file_is_refused_before_any_work(bench_step, tmp_path, monkeypatch):
    a_file = tmp_path / "results"
    a_file.write_text("")

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(bench_step, "make_setup", no_work)
    monkeypatch.setattr(bench_step, "limit_threads", no_work)
    with pytest.raises(SystemExit, match=f"error: --out-dir {a_file} is a file, not a folder"):
        bench_step.main(["--out-dir", str(a_file)])


def test_threads_on_the_command_line_are_read_before_numpy_loads(bench_step):
    assert bench_step.requested_threads(["--device", "cpu", "--threads", "3"]) == 3
    assert bench_step.requested_threads(["--threads", "0"]) is None  # parse_args refuses it later
    assert bench_step.requested_threads(["--threads", "x"]) is None
    assert bench_step.requested_threads([]) is None


def test_baseline_row_runs_another_checkouts_readable_path_on_the_same_weights(bench_step, tmp_path):
    # This checkout as its own baseline: the same code on the same weights and batches gives the same step.
    setup = bench_step.make_setup(8, 1, "nonsaturating", "cpu", seed=0)
    ours, theirs = bench_step.make_minigan(setup), bench_step.make_minigan_baseline(setup, ROOT)
    assert theirs.name == "minigan baseline" and theirs.peer == "torch" and not theirs.measure_memory
    a, b = ours.iteration(), theirs.iteration()
    assert float(a["d_loss"]) == float(b["d_loss"]) and float(a["g_loss"]) == float(b["g_loss"])
    assert sys.modules["minigan_baseline"].__name__ == "minigan_baseline"  # a second package, not ours again
    assert bench_step.baseline_description(None) is None
    assert bench_step.baseline_description(tmp_path) == "a checkout without git"
    with pytest.raises(SystemExit, match="no minigan/__init__.py there"):
        bench_step.load_baseline(tmp_path)
