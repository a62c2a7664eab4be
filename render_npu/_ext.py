"""Loads the compiled module ``render_npu._C`` once, and remembers why it is missing if it is.

``RENDER_NPU_EXT_DIR`` points at a folder holding a ``_C*.so`` built elsewhere (a sanitizer
build, a developer's ``build/`` folder); otherwise the copy installed inside the package is used.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import threading
import warnings
from types import ModuleType
from typing import Optional

_lock = threading.Lock()
_loaded = False
_module: Optional[ModuleType] = None
_reason = ""


def _load() -> ModuleType:
    ext_dir = os.environ.get("RENDER_NPU_EXT_DIR")
    if ext_dir:
        paths = sorted(glob.glob(os.path.join(ext_dir, "_C*.so")) + glob.glob(os.path.join(ext_dir, "_C*.pyd")))
        if not paths:
            raise ImportError(f"RENDER_NPU_EXT_DIR={ext_dir!r} holds no _C module")
        spec = importlib.util.spec_from_file_location("render_npu._C", paths[0])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    from . import _C  # noqa: PLC0415

    return _C


def get() -> Optional[ModuleType]:
    """The compiled module, or None (with a one-time warning) when it cannot be imported."""
    global _loaded, _module, _reason
    if _loaded:
        return _module
    with _lock:
        if not _loaded:
            try:
                _module = _load()
            except Exception as exc:  # ImportError, or a broken shared object
                _module = None
                _reason = f"compiled module render_npu._C could not be imported: {exc}"
                warnings.warn(_reason + " -- falling back to the Python/torch implementations (slower).",
                              RuntimeWarning, stacklevel=3)
            _loaded = True
    return _module


def reason() -> str:
    """Why the compiled module is unavailable ('' when it loaded)."""
    get()
    return _reason
