"""The backends, one module or package each, and their registry.

Each backend computes the same contract (docs/rasterization.md) as one function
``rasterize(inp: RasterInputs, **options) -> (rast [B, H, W, 4], depth [B, H, W])``:

* :mod:`.reference`: numpy, one triangle at a time, the executable definition;
* :mod:`.cpu`: the compiled C++ tile rasterizer (csrc/rasterize);
* :mod:`.torch`: torch ops (NPU via torch_npu, CUDA, CPU), split by stage;
* :mod:`.ascendc`: the AscendC fine-raster kernel as a torch_npu op (``ascendc``), or compiled for
  the host against an emulated AscendC API (``ascendc_host``), after the torch setup.

A :class:`Backend` says which devices a backend serves, whether it writes into
``rasterize(out=...)`` itself, and which options it takes, so that :func:`render_npu.rasterize`
names no backend. Availability is probed lazily, once, with a reason when absent.

``render_npu.backends`` is also the public function listing them
(``render_npu.backends() -> {name: (available, reason)}``): this package is callable, so both
``render_npu.backends()`` and ``import render_npu.backends.torch`` work.
"""
from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple


@dataclass(frozen=True)
class Backend:
    """What the dispatcher needs to know of a backend.

    Attributes:
        name: the ``backend=`` string.
        devices: device types whose tensors it takes (None: any; the reference copies to the host).
        writes_out: it writes into the ``out`` buffers of ``rasterize(out=...)`` itself (else the
            dispatcher copies its result in).
        options: the keyword options its ``rasterize`` takes (``rasterize(..., **options)``).
        module, fn: where its entry point lives; ``probe``: the module's ``() -> (available, reason)``
            (None: available whenever the module imports).
        summary: what it is, shown by :func:`render_npu.backends` when available.
    """
    name: str
    devices: Optional[Tuple[str, ...]]
    writes_out: bool
    options: Tuple[str, ...]
    module: str
    fn: str
    probe: Optional[str]
    summary: str


REGISTRY: Dict[str, Backend] = {b.name: b for b in (
    Backend("reference", None, False, (), "render_npu.backends.reference", "rasterize", None,
            "numpy reference, exact; CPU only (inputs are copied to the host)"),
    Backend("cpu", ("cpu",), True, ("num_threads",), "render_npu.backends.cpu", "rasterize", "status",
            "compiled C++ tile rasterizer, multithreaded"),
    Backend("torch", None, False, ("memory_budget", "edge_arith", "static_shapes", "stamp_size", "compile"),
            "render_npu.backends.torch", "rasterize", None,
            "portable torch-ops tile rasterizer (NPU via torch_npu, CUDA, CPU)"),
    Backend("ascendc", ("npu",), False, ("block_dim",), "render_npu.backends.ascendc", "rasterize", "status", ""),
    Backend("ascendc_host", ("cpu",), False, ("block_dim", "num_threads", "device_rounding"),
            "render_npu.backends.ascendc", "rasterize_host", "host_status", ""),
)}


@dataclass
class BackendStatus:
    available: bool
    reason: str  # why it is unavailable, or what it is when available
    fn: Optional[Callable] = None


_cache: Dict[str, BackendStatus] = {}


def _probe(b: Backend) -> BackendStatus:
    try:
        mod = importlib.import_module(b.module)
    except Exception as exc:  # a broken install: say why instead of failing every call
        return BackendStatus(False, f"{b.module} failed to import: {exc}")
    ok, why = getattr(mod, b.probe)() if b.probe else (True, "")
    return BackendStatus(ok, why or b.summary, getattr(mod, b.fn) if ok else None)


def status(name: str) -> BackendStatus:
    """Availability of backend ``name`` (probed once)."""
    if name not in _cache:
        _cache[name] = _probe(REGISTRY[name])
    return _cache[name]


def listing() -> Dict[str, Tuple[bool, str]]:
    """{name: (available, reason)} for every backend this build knows."""
    return {name: (status(name).available, status(name).reason) for name in REGISTRY}


def choose(name: str, device_type: str) -> Backend:
    """The backend for ``backend=name`` on tensors of ``device_type``: ``"auto"`` picks ``cpu`` for
    CPU tensors, ``ascendc`` for NPU tensors when its op is built, else ``torch`` (and the
    reference on CPU as a last resort). Explicit names are checked (ValueError / RuntimeError)."""
    if name == "auto":
        for cand in {"cpu": ("cpu", "torch", "reference"), "npu": ("ascendc", "torch")}.get(device_type, ("torch",)):
            if status(cand).available:
                return REGISTRY[cand]
        raise RuntimeError(f"no rasterizer backend is available for {device_type!r} tensors: "
                           f"torch backend: {status('torch').reason}")
    if name not in REGISTRY:
        raise ValueError(f"backend must be 'auto' or one of {sorted(REGISTRY)}, got {name!r}")
    st = status(name)
    if not st.available:
        raise RuntimeError(f"backend {name!r} is not available here: {st.reason}")
    b = REGISTRY[name]
    if b.devices is not None and device_type not in b.devices:
        raise ValueError(f"backend {name!r} needs {' or '.join(d.upper() for d in b.devices)} tensors, "
                         f"got tensors on {device_type!r}")
    return b


def resolve_backend(backend: str = "auto", device="cpu") -> str:
    """The name of the backend :func:`render_npu.rasterize` uses for ``backend`` on tensors on
    ``device`` (a ``torch.device`` or a string such as ``"cpu"``, ``"npu:0"``, ``"cuda"``); see
    :func:`choose`. Raises ``ValueError``/``RuntimeError`` saying why."""
    # a string is parsed here: torch.device("npu") fails until torch_npu is imported
    dev_type = device.split(":")[0] if isinstance(device, str) else device.type
    return choose(backend, dev_type).name


class _CallablePackage(types.ModuleType):
    def __call__(self) -> Dict[str, Tuple[bool, str]]:
        """{name: (available, reason)} for every backend this build knows."""
        return listing()


sys.modules[__name__].__class__ = _CallablePackage
