"""Backend registry and dispatch. Each backend is one function
``fn(inp: RasterInputs, **options) -> (rast [B,H,W,4], depth [B,H,W])`` computing the same
contract (docs/rasterization.md); availability is decided lazily, with a reason when absent."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple


@dataclass
class BackendStatus:
    available: bool
    reason: str  # why it is unavailable, or what it is when available
    fn: Optional[Callable] = None


def _reference() -> BackendStatus:
    from . import reference

    return BackendStatus(True, "numpy reference, exact; CPU only (inputs are copied to the host)", reference.rasterize)


def _cpu() -> BackendStatus:
    from . import _ext, cpu_backend

    if _ext.get() is None:
        return BackendStatus(False, _ext.reason())
    return BackendStatus(True, "compiled C++ tile rasterizer, multithreaded", cpu_backend.rasterize)


def _torch() -> BackendStatus:
    try:
        mod = importlib.import_module("render_npu.backends.torch")
    except Exception as exc:
        return BackendStatus(False, f"render_npu.backends.torch failed to import: {exc}")
    return BackendStatus(True, "portable torch-ops tile rasterizer (NPU via torch_npu, CUDA, CPU)", mod.rasterize)


def _ascendc_probe(status_name: str, fn_name: str) -> BackendStatus:
    try:
        mod = importlib.import_module("render_npu.ascendc_backend")
    except Exception as exc:
        return BackendStatus(False, f"render_npu.ascendc_backend failed to import: {exc}")
    ok, why = getattr(mod, status_name)()
    return BackendStatus(ok, why, getattr(mod, fn_name) if ok else None)


def _ascendc() -> BackendStatus:
    """The AscendC kernel as a torch_npu custom op (only where CANN built it and torch_npu imports)."""
    return _ascendc_probe("status", "rasterize")


def _ascendc_host() -> BackendStatus:
    """The AscendC kernel source compiled against the host emulation (ascendc_kernels/host/), with the
    torch backend's setup: the way the device kernel is tested without CANN. CPU tensors only."""
    return _ascendc_probe("host_status", "rasterize_host")


_PROBES: Dict[str, Callable[[], BackendStatus]] = {
    "reference": _reference,
    "cpu": _cpu,
    "torch": _torch,
    "ascendc": _ascendc,
    "ascendc_host": _ascendc_host,
}
_cache: Dict[str, BackendStatus] = {}


def status(name: str) -> BackendStatus:
    if name not in _cache:
        _cache[name] = _PROBES[name]()
    return _cache[name]


def backends() -> Dict[str, Tuple[bool, str]]:
    """{name: (available, reason)} for every backend this build knows."""
    return {name: (status(name).available, status(name).reason) for name in _PROBES}


def resolve_backend(backend: str = "auto", device="cpu") -> str:
    """The backend :func:`render_npu.rasterize` uses for ``backend`` on tensors on ``device`` (a
    ``torch.device``, or a string such as ``"cpu"``, ``"npu:0"``, ``"cuda"``): ``"auto"`` picks
    ``cpu`` for CPU tensors, ``ascendc`` for NPU tensors when its op is built, else ``torch``;
    explicit names are checked. Raises ``ValueError``/``RuntimeError`` saying why."""
    import torch

    return choose(backend, torch.device(device).type)


def choose(name: str, device_type: str) -> str:
    """Resolve ``backend="auto"`` for tensors on ``device_type`` (and check explicit names)."""
    if name == "auto":
        if device_type == "cpu" and status("cpu").available:
            return "cpu"
        if device_type == "npu" and status("ascendc").available:
            return "ascendc"
        if status("torch").available:
            return "torch"
        if device_type == "cpu":  # last resort: slow but exact
            return "reference"
        raise RuntimeError(f"no rasterizer backend is available for {device_type!r} tensors: "
                           f"torch backend: {status('torch').reason}")
    if name not in _PROBES:
        raise ValueError(f"backend must be 'auto' or one of {sorted(_PROBES)}, got {name!r}")
    st = status(name)
    if not st.available:
        raise RuntimeError(f"backend {name!r} is not available here: {st.reason}")
    if name in ("cpu", "ascendc_host") and device_type != "cpu":
        raise ValueError(f"backend {name!r} needs CPU tensors, got tensors on {device_type!r}")
    return name
