"""The CUDA plumbing of the fused step: its stream, cuBLAS handle and events (CudaStep), and the
replay of the whole step as one CUDA graph (StepGraph). CUDA only, imported only by the CUDA path.

A step of the reference GAN is some sixty small kernels; launched one by one from Python, the
launches cost more than the maths below B ≈ 1024. Captured once into a CUDA graph, the step is a
single launch. What makes the step capturable (the measurements are in docs/gpu.md):
- it allocates nothing and reads its inputs from static buffers, refilled before each replay;
- no Python number that changes between steps reaches a kernel (Adam's step count is on the device);
- GEMMs go through our own cuBLAS handle (cublas.py), whose stream and workspace are set beforehand;
- nothing synchronises with the host.

The first run at a given batch size is eager: it compiles the kernels and makes any lazily built
buffers, which must not happen during capture. The second run is captured, then launched. If
capture or a launch fails, the step falls back to eager for good, after one warning.
"""

from __future__ import annotations

import warnings


def capture(step, stream):
    """Record `step()` on `stream` into a CUDA graph and return it; nothing runs yet.

    On failure the capture is ended (and its partial graph dropped) before the error propagates,
    so that the stream is usable again.
    """
    stream.begin_capture()
    try:
        with stream:
            step()
    except BaseException:
        try:
            stream.end_capture()
        except Exception:  # an invalidated capture raises here too; the original error matters
            pass
        raise
    return stream.end_capture()


class StepGraph:
    """Runs a step on `stream`: eagerly once per batch size, then as a replayed CUDA graph."""

    def __init__(self, stream, enabled: bool = True):
        self.stream = stream
        self.enabled = enabled
        self.graph = None
        self.failed = False  # capture or a replay failed once: eager from now on
        self.failed_at = None  # which of the two: "capture" or "replay"
        self.error = None  # why it failed, one line
        self.last = None  # how the latest run ran: "graph" or "eager"
        self._key = None  # the batch size the graph (or warm-up) is for
        self._warm = False

    def run(self, step, key) -> None:
        if key != self._key:  # new shapes: new buffers, so warm up and capture again
            self._key, self._warm, self.graph = key, False, None
        if not self.enabled or self.failed or not self._warm:
            with self.stream:
                step()
            self._warm, self.last = True, "eager"
            return
        if self.graph is None:
            try:
                self.graph = capture(step, self.stream)
            except Exception as error:
                return self._fall_back(step, "capture", error)
        try:
            self.graph.launch(self.stream)
        except Exception as error:  # a launch that fails enqueues nothing
            return self._fall_back(step, "replay", error)
        self.last = "graph"

    def _fall_back(self, step, what, error) -> None:
        """Warn once, run this iteration eagerly (capture ran nothing; a failed launch queued
        nothing), and stay eager from now on."""
        self.failed, self.failed_at, self.graph = True, what, None
        self.error = f"{type(error).__name__}: {' '.join(str(error).split())}"
        warnings.warn(f"CUDA graph {what} of the training step failed ({self.error}); running the "
                      f"step eagerly from now on", RuntimeWarning, stacklevel=5)
        with self.stream:
            step()
        self.last = "eager"


class CudaStep:
    """What the fused step needs on one GPU: a stream of its own, a cuBLAS handle bound to that
    stream (made here, before any capture), the StepGraph that runs the step, and the events that
    order the step after the caller's work and the caller's later work after the step."""

    def __init__(self, device_id: int, cuda_graph: bool = True, tf32: bool = False):
        import cupy

        from . import cublas

        self.device_id = device_id
        with cupy.cuda.Device(device_id):
            self.stream = cupy.cuda.Stream(non_blocking=True)
            self.linalg = cublas.Cublas(self.stream, tf32=tf32, device_id=device_id)
            self.runner = StepGraph(self.stream, enabled=cuda_graph)
            self._inputs_ready = cupy.cuda.Event(disable_timing=True)
            self._step_done = cupy.cuda.Event(disable_timing=True)

    def device(self):
        """A context manager making this GPU the current one."""
        import cupy

        return cupy.cuda.Device(self.device_id)

    def run(self, step, key, inputs, result):
        """Copy each (static buffer, given array) of `inputs`, run `step()` on our stream (eagerly
        or as the graph for `key`), and return a copy of `result`, all without waiting on the host.

        The copies run on the caller's stream, ordered after the work that made the arrays; our
        stream waits for them, and the caller's stream for our step. The returned copy is made on
        the caller's stream, so the caller owns that memory.
        """
        import cupy

        with self.device():
            caller = cupy.cuda.get_current_stream()
            for static, given in inputs:
                if given is not static:
                    static[...] = given
            self._inputs_ready.record(caller)
            self.stream.wait_event(self._inputs_ready)
            self.runner.run(step, key=key)
            self._step_done.record(self.stream)
            caller.wait_event(self._step_done)
            return result.copy()

    def caller_waits(self) -> None:
        """Make the caller's current stream wait for everything queued on ours (before reading
        our buffers from it)."""
        import cupy

        with self.device():
            cupy.cuda.get_current_stream().wait_event(self.stream.record())
