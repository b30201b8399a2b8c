"""The fused step's CUDA plumbing (minigan/fast/cuda_graph.py), with stand-ins for CuPy's streams
and GPUs, so no GPU is needed: when StepGraph warms up, captures, replays, recaptures and falls
back is plain Python. What a CUDA graph computes is checked on a GPU (tests/test_fast_cuda.py)."""

import sys
import types
import warnings

import numpy as np
import pytest

from minigan import gan, optim

# --- cuda_graph.StepGraph's bookkeeping, with a stand-in for a CUDA stream ---------------------------------


class RecordingStream:
    """Kernels launched while capturing are recorded into the graph instead of running."""

    def __init__(self):
        self.capturing, self.recorded, self.captures = False, None, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def begin_capture(self):
        assert not self.capturing
        self.capturing, self.recorded = True, []
        self.captures += 1

    def end_capture(self):
        assert self.capturing
        self.capturing = False
        return RecordedGraph(self.recorded)

    def launch(self, kernel):
        self.recorded.append(kernel) if self.capturing else kernel()


class RecordedGraph:
    def __init__(self, kernels_):
        self.kernels = kernels_

    def launch(self, stream):
        for kernel in self.kernels:
            kernel()


def counting_step(stream, counter, refuse_capture=False):
    def step():
        if refuse_capture and stream.capturing:
            raise NotImplementedError("this library refuses stream capture")
        stream.launch(lambda: counter.__setitem__("runs", counter["runs"] + 1))
    return step


def test_step_graph_warms_up_eagerly_then_captures_once_and_replays():
    from minigan.fast import cuda_graph

    stream, counter = RecordingStream(), {"runs": 0}
    runner = cuda_graph.StepGraph(stream)
    for i in range(1, 6):
        runner.run(counting_step(stream, counter), key=64)
        assert counter["runs"] == i  # every call ran the step exactly once, captured or not
        assert runner.last == ("eager" if i == 1 else "graph")
    assert stream.captures == 1 and runner.graph is not None and not stream.capturing
    runner.run(counting_step(stream, counter), key=32)  # new batch size: eager again, then recapture
    runner.run(counting_step(stream, counter), key=32)
    assert counter["runs"] == 7 and stream.captures == 2


def test_step_graph_falls_back_to_eager_with_one_warning():
    from minigan.fast import cuda_graph

    stream, counter = RecordingStream(), {"runs": 0}
    runner = cuda_graph.StepGraph(stream)
    with pytest.warns(RuntimeWarning, match="refuses stream capture") as caught:
        for _ in range(5):
            runner.run(counting_step(stream, counter, refuse_capture=True), key=64)
    assert len(caught) == 1 and runner.failed and runner.graph is None
    assert runner.error == "NotImplementedError: this library refuses stream capture" and runner.last == "eager"
    assert counter["runs"] == 5 and not stream.capturing  # the failed capture was ended


def test_step_graph_disabled_runs_eagerly():
    from minigan.fast import cuda_graph

    stream, counter = RecordingStream(), {"runs": 0}
    runner = cuda_graph.StepGraph(stream, enabled=False)
    for _ in range(3):
        runner.run(counting_step(stream, counter), key=64)
    assert counter["runs"] == 3 and stream.captures == 0 and runner.last == "eager"


# --- the fused step's CUDA plumbing (minigan/fast), with stand-ins for CuPy's stream and GPUs -------


class StandInStream:
    """Enough of a cupy.cuda.Stream for cuda_graph.StepGraph: a context, capture, and a graph whose
    launch raises once it has been launched `fail_after` times."""

    def __init__(self, fail_after=None):
        self.capturing, self.launches, self.fail_after = False, 0, fail_after

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def begin_capture(self):
        self.capturing = True

    def end_capture(self):
        self.capturing = False
        stream = self

        class Graph:
            def launch(self, on):
                if stream.fail_after is not None and stream.launches >= stream.fail_after:
                    raise RuntimeError("cudaErrorLaunchFailure: the launch\nfailed")
                stream.launches += 1

        return Graph()


def test_a_failed_replay_falls_back_to_eager_with_one_warning():
    from minigan.fast import cuda_graph

    stream, eager_runs = StandInStream(fail_after=2), []
    runner = cuda_graph.StepGraph(stream)

    def step():  # records whether it ran while the stream was capturing
        eager_runs.append(stream.capturing)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(6):
            runner.run(step, key=64)
    # Warm-up eager, capture (the step records into the graph), two launches, then the third
    # launch fails: that iteration and every later one run eagerly.
    assert eager_runs == [False, True, False, False, False]
    assert stream.launches == 2 and runner.failed and runner.failed_at == "replay" and runner.graph is None
    assert runner.last == "eager" and runner.error == "RuntimeError: cudaErrorLaunchFailure: the launch failed"
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and messages[0].startswith("CUDA graph replay of the training step failed")


class StandInArray(np.ndarray):
    """A NumPy array that CuPy code takes for a cupy.ndarray on GPU `device_id`; views keep it."""

    on_copy = None  # called with each copy, which CuPy makes on the current GPU

    def __array_finalize__(self, obj):
        self.device_id = getattr(obj, "device_id", None)

    def copy(self, *args, **kwargs):
        return type(self).on_copy(super().copy(*args, **kwargs))

    @property
    def device(self):
        return type("Device", (), {"id": self.device_id})()


StandInArray.__module__ = "cupy._stand_in"  # backend.array_module takes a "cupy..." type for a GPU array


def stand_in_cupy(allocations):
    """A `cupy` whose allocations land on the current GPU, as CuPy's do, each one recorded."""
    current = [0]

    class Device:
        def __init__(self, device_id=None):
            self.id = current[0] if device_id is None else device_id

        def __enter__(self):
            self.previous, current[0] = current[0], self.id
            return self

        def __exit__(self, *exc):
            current[0] = self.previous

    def allocated(array):
        array = np.array(array).view(StandInArray)
        array.device_id = current[0]
        allocations.append(current[0])
        return array

    StandInArray.on_copy = allocated
    return types.SimpleNamespace(
        cuda=types.SimpleNamespace(Device=Device),
        empty=lambda shape, dtype=np.float64: allocated(np.empty(shape, dtype)),
        zeros_like=lambda a: allocated(np.zeros(a.shape, a.dtype)),
        asarray=lambda a, dtype=None: allocated(np.asarray(a, dtype)))


def test_fused_players_allocate_every_buffer_on_their_own_gpu(monkeypatch):
    """On cuda:1 (GPU 0 current, as in a fresh process), the flat parameters, gradients, Adam
    moments and scalars, and the moments handed to an optimizer, are all made on GPU 1."""
    from minigan.fast import step

    allocations = []
    monkeypatch.setitem(sys.modules, "cupy", stand_in_cupy(allocations))
    G = gan.build_generator(gan.CONFIGS["reference"])
    for p in G.parameters():
        p.data = stand_in_gpu_array(p.data, 1)
    player = step._FlatPlayer(G, "G", 2e-4, (0.5, 0.999), 1e-8)
    assert len(allocations) == 5 and set(allocations) == {1}, allocations
    for buffer in (player.params, player.grads, player.exp_avg, player.exp_avg_sq, player.adam_scalars):
        assert buffer.device_id == 1
    np.testing.assert_array_equal(player.param_views[0], G.parameters()[0].data)
    opt = optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    allocations.clear()
    player.store_adam(opt)  # a copy of each moment, for each parameter
    player.load_adam(opt)  # fresh Adam scalars
    assert len(allocations) == 2 * len(G.parameters()) + 1 and set(allocations) == {1}, allocations


def stand_in_gpu_array(array, device_id):
    array = np.array(array).view(StandInArray)
    array.device_id = device_id
    return array
