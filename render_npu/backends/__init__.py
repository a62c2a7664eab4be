"""Backend implementations, one subpackage per backend (for now: :mod:`render_npu.backends.torch`).

``render_npu.backends`` is also the public function that lists the backends
(``render_npu.backends() -> {name: (available, reason)}``): the package and the function share the
name, so this module is callable and calling it is :func:`render_npu._backends.backends`. That
keeps both ``render_npu.backends()`` and ``import render_npu.backends.torch`` working.
"""
import sys
import types
from typing import Dict, Tuple


class _CallablePackage(types.ModuleType):
    def __call__(self) -> Dict[str, Tuple[bool, str]]:
        """{name: (available, reason)} for every backend this build knows."""
        from .._backends import backends

        return backends()


sys.modules[__name__].__class__ = _CallablePackage
