"""The model's streaming step on CUDA, one frame at a time, replayed as a recorded CUDA graph.

On a GPU the TorchScript step of one frame is a few dozen tiny kernels, each launched by the interpreter:
the launches, not the arithmetic, take the time.  A CUDA graph records those launches once and replays them
with one call.  A graph reads and writes fixed addresses, but the step keeps its stream's state (the causal
convolutions' caches) by replacing tensors on every call; so the recording ends by copying each replaced
state tensor back into the one it replaced, and the stream runs on in place.  Replaying the same kernels on
the same addresses computes what the step computes; several frames are replayed one after the other, which
the step's streaming guarantee (chunks of any size give the same frames) makes the same as one call.

A model with look-ahead counts its stream's first frames on the host (a synchronising read that a graph
cannot record): :func:`can_record` says no, and its TorchScript step runs as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: Untimed calls of the step on a side stream before recording: torch's advice, so that lazily created
#: state (cuBLAS handles, the allocator's pools) exists before the graph is captured.
WARM_UP_CALLS = 3


def can_record(lookahead: int) -> bool:
    """Whether a model's step can be recorded: only without look-ahead (see the module's docstring)."""
    return lookahead == 0


def buffer_owner(module: torch.nn.Module, name: str) -> tuple[torch.nn.Module, str]:
    """The submodule that holds buffer ``name`` (dotted, as ``named_buffers`` gives it) and its attribute name;
    by attribute walk, since TorchScript modules have no ``get_submodule``."""
    *path, attribute = name.split(".")
    for part in path:
        module = getattr(module, part)
    return module, attribute


def replaced_state(module: torch.jit.ScriptModule, frame: torch.Tensor) -> list[str]:
    """The buffers that one call of ``module.step(frame)`` replaces (its stream state), by name."""
    before = {name: tensor.data_ptr() for name, tensor in module.named_buffers()}
    module.step(frame)
    return [name for name, tensor in module.named_buffers() if tensor.data_ptr() != before[name]]


class CudaGraphStep:
    """``module.step`` of one stream on its CUDA device, replayed from a graph recorded for one frame.

    Same interface as :class:`engine.fusedmodel.FusedModel`: :meth:`step` on numpy frames, :meth:`reset`.
    The module's stream state is this object's from now on: reset it here, not on the module.
    """

    def __init__(self, module: torch.jit.ScriptModule) -> None:
        import torch

        self._module = module
        device = module.prototypes.device
        if device.type != "cuda":
            raise ValueError(f"a CUDA graph needs the module on a CUDA device, not {device}")
        self._input = torch.zeros(1, int(module.n_mels), device=device)
        with torch.no_grad():
            fixed = dict(module.named_buffers())
            saved = {name: tensor.clone() for name, tensor in fixed.items()}
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                #: The state the step replaces on every call, by buffer name, and the tensors that hold it for good.
                self._state = {name: fixed[name] for name in replaced_state(module, self._input)}
                for _ in range(WARM_UP_CALLS - 1):
                    module.step(self._input)
            torch.cuda.current_stream(device).wait_stream(side)
            self._restore_state_tensors()
            self._graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self._graph):
                self._params, self._errors = module.step(self._input)
                self._copy_state_back()
            self._restore_state_tensors()
            for name, tensor in fixed.items():
                tensor.copy_(saved[name])  # the warm-up's frames were not the stream's

    def _copy_state_back(self) -> None:
        """Each replaced state tensor's new contents into the tensor the graph reads next time."""
        for name, tensor in self._state.items():
            owner, attribute = buffer_owner(self._module, name)
            tensor.copy_(getattr(owner, attribute))

    def _restore_state_tensors(self) -> None:
        """The module's state attributes back to the tensors the graph reads and writes."""
        for name, tensor in self._state.items():
            owner, attribute = buffer_owner(self._module, name)
            setattr(owner, attribute, tensor)

    def step(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The next frames ``(n, n_mels)`` → ``(params (n, K, 6), errors (n, K))``, as the module's step."""
        import torch

        inputs = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).to(self._input.device)
        params = torch.empty((len(inputs), *self._params.shape[1:]), device=self._input.device)
        errors = torch.empty((len(inputs), *self._errors.shape[1:]), device=self._input.device)
        for index in range(len(inputs)):
            self._input.copy_(inputs[index : index + 1])
            self._graph.replay()
            params[index] = self._params[0]
            errors[index] = self._errors[0]
        return params.cpu().numpy(), errors.cpu().numpy()

    def reset(self) -> None:
        """Forget the stream, as the module's ``reset``, keeping the tensors the graph uses."""
        import torch

        with torch.no_grad():
            self._module.reset()
            self._copy_state_back()
        self._restore_state_tensors()
