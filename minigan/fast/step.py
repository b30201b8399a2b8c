"""FusedTrainer: Algorithm 1 for the `reference` GAN, backpropagated by hand over flat buffers.

The autograd path (gan.train_iteration) builds a graph of small ops on every step and walks it
back. Here the two MLPs' forward and backward passes are written out once, layer by layer:

    forward   h_l = act(h_{l−1} W_l + b_l)                      (GEMM, then bias+activation fused)
    backward  δ_l = dL/dh_l · act'(h_l)                         (fused, in place)
              dW_l = h_{l−1}ᵀ δ_l;  db_l = Σ_rows δ_l;  dL/dh_{l−1} = δ_l W_lᵀ

Each player's weights and biases are views into one flat parameter buffer, their gradients views
into one flat gradient buffer, so that Adam is one kernel over the whole player. Every gradient
slice is *written* by its GEMM or column sum, never accumulated, so no zero-grad pass is needed.

The discriminator step runs D once over real and fake rows stacked, [x; G(z)] (2m rows). Its
loss is a mean over each half separately (eq. 2), so every row's weight is 1/m, not 1/(2m).

The same code runs on NumPy (CPU) and CuPy (CUDA); kernels.py holds both versions of each fused
op, and the GEMMs are NumPy's BLAS or cuBLAS (cublas.py). On CUDA the whole iteration can be
captured into one CUDA graph (cuda_graph.py).
"""

from __future__ import annotations

import contextlib

import numpy as np

from .. import backend, gan, nn, optim
from ..tensor import Tensor, no_grad
from . import kernels


# --- the players, as layers over flat buffers ------------------------------------------------------


class _Layer:
    """One Linear layer and the activation after it, as the two fused kernels that run them:
    forward(h, bias, scratch) adds the bias and applies the activation to the GEMM's output h,
    backward(grad, output, scratch) multiplies dL/d(output) by the activation's derivative
    (None when there is no activation)."""

    def __init__(self, linear: nn.Linear, activation: nn.Module | None):
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.activation = activation
        if isinstance(activation, nn.LeakyReLU):
            # The kernels use y > 0 ⇔ x > 0 and max(x, slope·x), both true for 0 < slope ≤ 1.
            if not 0 < activation.slope <= 1:
                raise ValueError(f"FusedTrainer: LeakyReLU slope must be in (0, 1], got {activation.slope}")
            slope = float(activation.slope)
            self.forward = lambda h, bias, scratch: kernels.bias_leaky_relu(h, bias, slope, scratch)
            self.backward = lambda grad, y, scratch: kernels.leaky_relu_backward(grad, y, slope, scratch)
        elif isinstance(activation, nn.Tanh):
            self.forward = lambda h, bias, scratch: kernels.bias_tanh(h, bias)
            self.backward = kernels.tanh_backward
        else:
            self.forward = lambda h, bias, scratch: kernels.add_bias(h, bias)
            self.backward = None


def _layers_of(module: nn.Module, name: str) -> list[_Layer]:
    """An MLP's layers: a Sequential of Linear layers, each followed by LeakyReLU, Tanh or nothing."""
    supported = "Linear layers each followed by LeakyReLU, Tanh or nothing (the `reference` config)"
    if not isinstance(module, nn.Sequential):
        raise ValueError(f"FusedTrainer: {name} must be an nn.Sequential of {supported}, got {type(module).__name__}")
    modules, layers, i = list(module), [], 0
    while i < len(modules):
        linear = modules[i]
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"FusedTrainer: {name}[{i}] is {linear!r}; the fused step supports {supported}")
        activation = modules[i + 1] if i + 1 < len(modules) else None
        if activation is not None and not isinstance(activation, (nn.LeakyReLU, nn.Tanh)):
            if not isinstance(activation, nn.Linear):
                raise ValueError(f"FusedTrainer: {name}[{i + 1}] is {activation!r}; "
                                 f"the fused step supports {supported}")
            activation = None
        layers.append(_Layer(linear, activation))
        i += 2 if activation is not None else 1
    return layers


class _FlatPlayer:
    """One player's parameters, gradients and Adam state, each a single flat buffer with views.

    The parameters are copied from the module (in its parameters() order: weight, bias, layer by
    layer); the module itself is not touched until copy_to_modules.
    """

    def __init__(self, module: nn.Module, name: str, lr, betas, eps):
        self.module, self.name = module, name
        self.layers = _layers_of(module, name)
        params = module.parameters()
        self.dtype, self.device = params[0].dtype, params[0].device
        if np.dtype(self.dtype) not in (np.float32, np.float64):
            raise TypeError(f"FusedTrainer: {name} has dtype {self.dtype}; use float32 or float64")
        if any(p.dtype != self.dtype or p.device != self.device for p in params):
            raise TypeError(f"FusedTrainer: {name}'s parameters must share one dtype and one device")
        xp = self.xp = backend.array_module(params[0].data)
        shapes = [shape for layer in self.layers
                  for shape in ((layer.in_features, layer.out_features), (layer.out_features,))]
        if [p.shape for p in params] != shapes:
            raise ValueError(f"FusedTrainer: {name}'s parameters {[p.shape for p in params]} are not "
                             f"the weights and biases of its Linear layers {shapes}")
        sizes = [int(np.prod(shape)) for shape in shapes]
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.slices = [(int(a), int(b), shape) for a, b, shape in zip(offsets[:-1], offsets[1:], shapes)]
        # CuPy allocates on the *current* GPU, so every buffer is made with the players' GPU current.
        with self.on_device():
            self.params = xp.empty(int(offsets[-1]), dtype=self.dtype)
            self.grads = xp.zeros_like(self.params)
            self.param_views, self.grad_views = self.views(self.params), self.views(self.grads)
            for view, p in zip(self.param_views, params):
                view[...] = p.data
            # Adam: two moment buffers like the parameters, and the step count etc. on the device.
            self.exp_avg, self.exp_avg_sq = xp.zeros_like(self.params), xp.zeros_like(self.params)
            self.adam_scalars = kernels.adam_scalars(xp, lr, betas, eps)
        self.weights, self.biases = self.param_views[0::2], self.param_views[1::2]
        self.weight_grads, self.bias_grads = self.grad_views[0::2], self.grad_views[1::2]
        self.adam_scratch = None if xp is not np else np.empty(kernels.ADAM_CHUNK, dtype=self.dtype)

    def on_device(self):
        """A context manager making the players' GPU the current one (nothing to do on the CPU)."""
        if self.xp is np:
            return contextlib.nullcontext()
        return self.xp.cuda.Device(backend.parse_device(self.device)[1])

    @property
    def in_features(self):
        return self.layers[0].in_features

    @property
    def out_features(self):
        return self.layers[-1].out_features

    def forward(self, x, outputs, scratches, linalg) -> None:
        """outputs[l] ← layer l's activation, for each layer; x is the input batch.

        scratches[l] is a NumPy buffer like outputs[l] (None on CUDA, where kernels need none).
        """
        h = x
        for layer, weight, bias, out, scratch in zip(self.layers, self.weights, self.biases, outputs, scratches):
            linalg.matmul(h, weight, out)
            layer.forward(out, bias, scratch)
            h = out

    def backward(self, x, outputs, scratches, grad_output, grad_buffers, linalg,
                 param_grads=True, grad_input=None) -> None:
        """Backpropagate dL/d(output) = `grad_output` (overwritten) through the layers.

        Writes the parameter gradients if `param_grads`, and dL/dx into `grad_input` if one is
        given; grad_buffers[l] receives dL/d(outputs[l]) for the hidden layers.
        """
        delta = grad_output
        for index in reversed(range(len(self.layers))):
            layer = self.layers[index]
            if layer.backward is not None:
                layer.backward(delta, outputs[index], scratches[index])
            h_in = x if index == 0 else outputs[index - 1]
            if param_grads:
                linalg.matmul(h_in, delta, self.weight_grads[index], trans_a=True)
                linalg.column_sum(delta, self.bias_grads[index])
            if index > 0:
                linalg.matmul(delta, self.weights[index], grad_buffers[index - 1], trans_b=True)
                delta = grad_buffers[index - 1]
            elif grad_input is not None:
                linalg.matmul(delta, self.weights[index], grad_input, trans_b=True)

    def adam_step(self) -> None:
        kernels.adam(self.params, self.grads, self.exp_avg, self.exp_avg_sq, self.adam_scalars, self.adam_scratch)

    def copy_to_module(self) -> None:
        with no_grad():  # an in-place write that bumps each parameter's version, as an optimizer step does
            for view, p in zip(self.param_views, self.module.parameters()):
                p.copy_(view)
                p.grad = None

    def views(self, flat):
        """Each parameter's slice of a flat buffer, shaped like the parameter."""
        return [flat[a:b].reshape(shape) for a, b, shape in self.slices]

    def load_adam(self, opt: optim.Adam) -> None:
        """Continue from an optim.Adam over this player's parameters: moments, step count, settings."""
        with self.on_device():
            self.adam_scalars[...] = kernels.adam_scalars(self.xp, opt.lr, opt.betas, opt.eps)
            self.adam_scalars[kernels.STEP] = opt.step_count()
            for name, flat in (("exp_avg", self.exp_avg), ("exp_avg_sq", self.exp_avg_sq)):
                for view, value in zip(self.views(flat), opt.state[name]):
                    view[...] = 0 if value is None else value

    def store_adam(self, opt: optim.Adam) -> None:
        """Write the fused Adam state into an optim.Adam, so that it can be checkpointed."""
        opt.set_step_count(int(self.adam_scalars[kernels.STEP]))
        with self.on_device():  # CuPy's copy() allocates on the current GPU
            for name, flat in (("exp_avg", self.exp_avg), ("exp_avg_sq", self.exp_avg_sq)):
                opt.state[name] = [view.copy() for view in self.views(flat)]


class _NumpyLinearAlgebra:
    matmul = staticmethod(kernels.matmul)
    column_sum = staticmethod(kernels.column_sum)


# --- the buffers of one batch size -----------------------------------------------------------------


class _Workspace:
    """Every buffer a step reads or writes, for batch size m; a step allocates nothing else.

    d_inputs[j] is D's input for D step j, (2m, 784): its first m rows are the data batch (filled
    before the step), the last m rows G(z), which G's forward writes there directly.
    """

    def __init__(self, G: _FlatPlayer, D: _FlatPlayer, m: int, k: int, loss: str):
        xp, dtype, n = G.xp, G.dtype, 2 * m
        on_cpu = xp is np
        self.m = m
        self.d_inputs = [xp.empty((n, D.in_features), dtype) for _ in range(k)]
        self.data = [d_input[:m] for d_input in self.d_inputs]
        # On CUDA the CUDA graph reads noise from fixed buffers too; on CPU the caller's arrays are used.
        self.noise = [xp.empty((m, G.in_features), dtype) for _ in range(k + 1)] if not on_cpu else None
        # G(z) in the generator step goes where the last D step's G(z) was: the fake half of its
        # D input, which no one reads once that step is done (m × 784 less at the peak).
        self.fake = self.d_inputs[-1][m:]
        # Hidden activations, one buffer per layer.
        self.g_hidden = [xp.empty((m, layer.out_features), dtype) for layer in G.layers[:-1]]
        self.d_hidden = [xp.empty((n, layer.out_features), dtype) for layer in D.layers[:-1]]
        # dL/dG(z), written by the last GEMM of D's backward in G's step, goes into D's first hidden
        # buffer: that GEMM does not read it, and D's activation derivative there has already been
        # read (m × 784 less at the peak, 25.7 MB at B = 8192). A D too narrow for it gets its own.
        fits = bool(self.d_hidden) and self.d_hidden[0].size >= m * G.out_features
        self.fake_grad = (self.d_hidden[0].reshape(-1)[:m * G.out_features].reshape(m, G.out_features) if fits
                          else xp.empty((m, G.out_features), dtype))
        # Their gradients. D's and G's are never needed at once (in G's step D's backward ends
        # before G's begins), so both players' gradient buffers are cut from one flat buffer.
        g_shapes = [(m, layer.out_features) for layer in G.layers[:-1]]
        d_shapes = [(n, layer.out_features) for layer in D.layers[:-1]]
        shared = xp.empty(max(sum(a * b for a, b in g_shapes), sum(a * b for a, b in d_shapes)), dtype)
        self.g_hidden_grads, self.d_hidden_grads = _cut(shared, g_shapes), _cut(shared, d_shapes)
        # NumPy's activation kernels need a temporary; one flat buffer of bounded size serves all
        # layers, as each op is done with it when it returns (kernels.SCRATCH_ELEMENTS). CUDA
        # kernels need none.
        largest = max(m * layer.out_features for layer in G.layers + D.layers) * 2
        scratch = np.empty(min(largest, kernels.SCRATCH_ELEMENTS), dtype) if on_cpu else None
        self.g_scratch, self.d_scratch = [scratch] * len(G.layers), [scratch] * len(D.layers)
        # Everything iteration() returns, in one buffer, so that one copy hands it over:
        # [d_loss, g_loss, D's 2m logits in the last D step (real rows, then fake rows)].
        self.stats = xp.zeros(2 + n, dtype)
        self.d_loss, self.g_loss = self.stats[0:1], self.stats[1:2]
        self.d_logits = self.stats[2:].reshape(n, 1)
        self.g_logits = xp.empty((m, 1), dtype)
        self.logit_grads = xp.empty((n, 1), dtype)
        # The losses as bce_with_logits weights: D's is t = 1 on real rows, 0 on fake rows, each
        # half a mean over its own m rows (eq. 2); G's depends on its loss (eq. 3 or −log D(G(z))).
        self.d_target = xp.asarray(np.repeat([[1.0], [0.0]], m, axis=0), dtype)
        self.d_weight = xp.full((n, 1), 1.0 / m, dtype)
        g_target, g_weight = (1.0, 1.0 / m) if loss == "nonsaturating" else (0.0, -1.0 / m)
        self.g_target = xp.full((m, 1), g_target, dtype)
        self.g_weight = xp.full((m, 1), g_weight, dtype)

    def d_rows(self, rows):
        """D's hidden buffers cut to the first `rows` rows (the generator step uses m), and its scratch."""
        return [a[:rows] for a in self.d_hidden], [a[:rows] for a in self.d_hidden_grads], self.d_scratch


def _cut(flat, shapes):
    """Consecutive views of the flat buffer `flat`, one per shape."""
    views, start = [], 0
    for a, b in shapes:
        views.append(flat[start:start + a * b].reshape(a, b))
        start += a * b
    return views


# --- the trainer -----------------------------------------------------------------------------------


class FusedTrainer:
    """Algorithm 1 for the `reference` GAN with hand-derived, fused forward and backward passes.

        trainer = FusedTrainer(G, D, k=1, loss="nonsaturating")
        stats = trainer.iteration([x], [z_d, z_g])   # k data batches, k + 1 noise batches
        trainer.copy_to_modules()                     # write the weights back into G and D

    Computes what gan.train_iteration computes with optim.Adam(lr, betas, eps) for each player:
    k discriminator steps, each on a fresh data and noise batch with G fixed, then one generator
    step on a fresh noise batch with D fixed (tests/test_fast_step.py checks this).

    G and D are minigan Modules as gan.build_generator/build_discriminator make them for the
    `reference` config, on "cpu" (NumPy) or "cuda" (CuPy), float32 or float64; their parameters are
    copied. On CUDA the iteration runs on a stream of its own, captured once into a CUDA graph if
    `cuda_graph` (falling back to eager, with one warning, if capture fails), and `tf32` lets the
    layers' GEMMs use TF32 tensor cores. Both are ignored on CPU.
    """

    def __init__(self, G: nn.Module, D: nn.Module, k: int = 1, loss: str = "nonsaturating",
                 lr: float = 2e-4, betas=(0.5, 0.999), eps: float = 1e-8, cuda_graph: bool = True,
                 tf32: bool = False):
        gan.check_game("FusedTrainer", k, loss)
        self.k, self.loss = int(k), loss
        betas = tuple(float(b) for b in betas)
        self.G = _FlatPlayer(G, "G", float(lr), betas, float(eps))
        self.D = _FlatPlayer(D, "D", float(lr), betas, float(eps))
        if (self.G.dtype, self.G.device) != (self.D.dtype, self.D.device):
            raise TypeError(f"FusedTrainer: G is {self.G.dtype} on {self.G.device}, D is {self.D.dtype} "
                            f"on {self.D.device}; they must match")
        if self.G.out_features != self.D.in_features:
            raise ValueError(f"FusedTrainer: G makes {self.G.out_features} features, D reads {self.D.in_features}")
        if self.D.out_features != 1 or self.D.layers[-1].activation is not None:
            raise ValueError("FusedTrainer: D must end in Linear(·, 1) with no activation: it outputs a logit")
        self.xp, self.dtype, self.device = self.G.xp, np.dtype(self.G.dtype), self.G.device
        self.on_gpu = self.xp is not np
        self.cuda_graph, self.tf32 = bool(cuda_graph), bool(tf32)
        self._workspace = None
        self.cuda = None  # the stream, cuBLAS handle and CUDA graph runner (cuda_graph.CudaStep) on a GPU
        if self.on_gpu:
            from .cuda_graph import CudaStep  # imported here: CPU code paths never import cupy or cuBLAS

            self.cuda = CudaStep(backend.parse_device(self.device)[1], self.cuda_graph, self.tf32)
            self.linalg = self.cuda.linalg
        else:
            self.linalg = _NumpyLinearAlgebra()

    # --- Algorithm 1 ---------------------------------------------------------------------------------

    def discriminator_step(self, ws: _Workspace, d_input, z) -> None:
        """One update of D on [x; G(z)] (d_input, 2m rows, x already in place), ascending eq. 2."""
        G, D, linalg, m = self.G, self.D, self.linalg, ws.m
        # G(z) with G fixed, written straight into the fake half of D's input; no backward through G.
        G.forward(z, ws.g_hidden + [d_input[m:]], ws.g_scratch, linalg)
        D.forward(d_input, ws.d_hidden + [ws.d_logits], ws.d_scratch, linalg)
        kernels.bce_with_logits(ws.d_logits, ws.d_target, ws.d_weight, ws.logit_grads, ws.d_loss)
        # No gradient with respect to D's input: the data needs none, and G is fixed.
        D.backward(d_input, ws.d_hidden + [ws.d_logits], ws.d_scratch, ws.logit_grads, ws.d_hidden_grads, linalg)
        D.adam_step()

    def generator_step(self, ws: _Workspace, z) -> None:
        """One update of G on noise z, descending eq. 3 (or −log D(G(z))) through a fixed D."""
        G, D, linalg, m = self.G, self.D, self.linalg, ws.m
        G.forward(z, ws.g_hidden + [ws.fake], ws.g_scratch, linalg)
        d_hidden, d_hidden_grads, d_scratch = ws.d_rows(m)
        D.forward(ws.fake, d_hidden + [ws.g_logits], d_scratch, linalg)
        logit_grads = ws.logit_grads[:m]
        kernels.bce_with_logits(ws.g_logits, ws.g_target, ws.g_weight, logit_grads, ws.g_loss)
        # Through D to its input, leaving D's gradients alone (D is fixed in this step).
        D.backward(ws.fake, d_hidden + [ws.g_logits], d_scratch, logit_grads, d_hidden_grads, linalg,
                   param_grads=False, grad_input=ws.fake_grad)
        G.backward(z, ws.g_hidden + [ws.fake], ws.g_scratch, ws.fake_grad, ws.g_hidden_grads, linalg)
        G.adam_step()

    def _train_iteration(self, ws: _Workspace, noise) -> None:
        for j in range(self.k):  # for k steps: update D (its data batch is already in place)
            self.discriminator_step(ws, ws.d_inputs[j], noise[j])
        self.generator_step(ws, noise[self.k])  # then update G

    # --- the public API ------------------------------------------------------------------------------

    def workspace(self, m: int) -> _Workspace:
        """The buffers for batch size m, made on first use (and remade when m changes)."""
        if self._workspace is None or self._workspace.m != m:
            if self.on_gpu:
                with self.cuda.device():
                    self._workspace = _Workspace(self.G, self.D, m, self.k, self.loss)
            else:
                self._workspace = _Workspace(self.G, self.D, m, self.k, self.loss)
        return self._workspace

    def input_buffers(self, m: int):
        """(data buffers, noise buffers) that iteration() reads, for batch size m: k data arrays
        (m, 784) and, on CUDA, k + 1 noise arrays (m, 100). Fill them in place and pass them to
        iteration() to skip its copies; they are overwritten by nothing but you."""
        ws = self.workspace(m)
        return list(ws.data), (list(ws.noise) if ws.noise is not None else None)

    def _check_batches(self, x_batches, z_batches):
        x_batches = [x.data if isinstance(x, Tensor) else x for x in x_batches]
        z_batches = [z.data if isinstance(z, Tensor) else z for z in z_batches]
        if len(x_batches) != self.k or len(z_batches) != self.k + 1:
            raise ValueError(f"iteration: k={self.k} needs {self.k} data batches and {self.k + 1} noise "
                             f"batches, got {len(x_batches)} and {len(z_batches)}")
        if z_batches[0].ndim != 2:
            raise ValueError(f"iteration: a noise batch must be (m, {self.G.in_features}), got {z_batches[0].shape}")
        m = z_batches[0].shape[0]
        for kind, batches, features in (("data", x_batches, self.D.in_features),
                                        ("noise", z_batches, self.G.in_features)):
            for batch in batches:
                if batch.shape != (m, features):
                    raise ValueError(f"iteration: every {kind} batch must have shape ({m}, {features}), "
                                     f"got {batch.shape}")
                if batch.dtype != self.dtype:
                    raise TypeError(f"iteration: {kind} batch has dtype {batch.dtype}, the players "
                                    f"{self.dtype}; convert it with astype")
                if backend.device_of(batch) != self.device:
                    raise backend.DeviceError(f"iteration: a {kind} batch is on {backend.device_of(batch)}, "
                                              f"the players on {self.device}")
        return x_batches, z_batches, m

    def iteration(self, x_batches, z_batches) -> dict:
        """One iteration of Algorithm 1: k D steps, then one G step. Returns device arrays
        {"d_loss", "d_real_logits", "d_fake_logits"} of the last D step (D's logits, (m, 1)) and
        {"g_loss"} of the G step, as gan.train_iteration does, without synchronising with the host.

        x_batches: k data batches (m, 784); z_batches: k + 1 noise batches (m, 100), on the
        players' device and of their dtype.
        """
        x_batches, z_batches, m = self._check_batches(x_batches, z_batches)
        ws = self.workspace(m)
        if not self.on_gpu:
            for static, x in zip(ws.data, x_batches):
                if x is not static:
                    np.copyto(static, x)
            self._train_iteration(ws, z_batches)
            stats = ws.stats.copy()
        else:
            stats = self.cuda.run(lambda: self._train_iteration(ws, ws.noise), key=m,
                                  inputs=zip(ws.data + ws.noise, x_batches + z_batches), result=ws.stats)
        return {"d_loss": stats[0:1].reshape(()), "d_real_logits": stats[2:2 + m].reshape(m, 1),
                "d_fake_logits": stats[2 + m:].reshape(m, 1), "g_loss": stats[1:2].reshape(())}

    def load_optimizer_states(self, opt_G: optim.Adam, opt_D: optim.Adam) -> None:
        """Continue from the players' optim.Adam optimizers (say, restored from a checkpoint)."""
        self.G.load_adam(opt_G)
        self.D.load_adam(opt_D)

    def copy_to_modules(self, opt_G: optim.Adam | None = None, opt_D: optim.Adam | None = None) -> None:
        """Write the trained parameters back into G's and D's parameter arrays (in place), and the
        Adam state into `opt_G` and `opt_D` when given, so that the modules and optimizers can be
        checkpointed or trained on by the autograd path."""
        def copy():
            for player, opt in ((self.G, opt_G), (self.D, opt_D)):
                player.copy_to_module()
                if opt is not None:
                    player.store_adam(opt)

        if not self.on_gpu:
            return copy()
        self.cuda.caller_waits()
        with self.cuda.device():
            copy()

    @property
    def captured(self) -> bool:
        """Whether the latest iteration ran as a replayed CUDA graph (never on the CPU)."""
        return self.cuda is not None and self.cuda.runner.last == "graph"

    @property
    def mode(self) -> str:
        """How iterations run here, in words: "NumPy", "CUDA graph", "eager" or "eager (CUDA graph capture
        failed: ...)" ("replay failed" when a launch of the captured graph failed)."""
        if self.cuda is None:
            return "NumPy"
        runner = self.cuda.runner
        if runner.failed:
            return f"eager (CUDA graph {runner.failed_at} failed: {runner.error})"
        return "CUDA graph" if runner.enabled else "eager"
