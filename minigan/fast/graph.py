"""Replaying a whole training step as one CUDA graph: CUDA only, imported only by the CUDA path.

A step of the reference GAN is some sixty small kernels; launched one by one from Python, the
launches cost more than the maths below B ≈ 1024. Captured once into a CUDA graph, the step is a
single launch. What makes the step capturable (see /work/shared/notes/GPU.md):
- it allocates nothing and reads its inputs from static buffers, refilled before each replay;
- no Python number that changes between steps reaches a kernel (Adam's step count is on the device);
- GEMMs go through our own cuBLAS handle (cublas.py), whose stream and workspace are set beforehand;
- nothing synchronises with the host.

The first run at a given batch size is eager: it compiles the kernels and makes any lazily built
buffers, which must not happen during capture. The second run is captured, then launched. If
capture fails, the step falls back to eager for good, after one warning.
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
        self.failed = False  # capture failed once: eager from now on
        self._key = None  # the batch size the graph (or warm-up) is for
        self._warm = False

    def run(self, step, key) -> None:
        if key != self._key:  # new shapes: new buffers, so warm up and capture again
            self._key, self._warm, self.graph = key, False, None
        if not self.enabled or self.failed or not self._warm:
            with self.stream:
                step()
            self._warm = True
            return
        if self.graph is None:
            try:
                self.graph = capture(step, self.stream)
            except Exception as error:
                self.failed = True
                warnings.warn(f"CUDA graph capture of the training step failed ({type(error).__name__}: "
                              f"{error}); running the step eagerly from now on", RuntimeWarning, stacklevel=4)
                with self.stream:  # capture ran nothing, so this iteration still has to happen
                    step()
                return
        self.graph.launch(self.stream)
