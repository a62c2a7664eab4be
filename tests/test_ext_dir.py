"""When a run says which compiled module it means to test (``RENDER_NPU_EXPECT_EXT_DIR``, set by
scripts/sanitize_tests.sh), fail loudly if another one -- or none -- was loaded."""
import os

import pytest

from render_npu import _ext

EXPECT = os.environ.get("RENDER_NPU_EXPECT_EXT_DIR")


@pytest.mark.skipif(not EXPECT, reason="RENDER_NPU_EXPECT_EXT_DIR not set (only the sanitizer run sets it)")
def test_expected_compiled_module_is_loaded():
    module = _ext.get()
    assert module is not None, f"the compiled module did not load: {_ext.reason()}"
    where = os.path.realpath(module.__file__)
    assert where.startswith(os.path.realpath(EXPECT) + os.sep), f"_C loaded from {where}, expected under {EXPECT}"
