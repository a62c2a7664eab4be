"""Process memory probes (Linux /proc): the peak resident set of a piece of work."""
from __future__ import annotations

from typing import Optional


def reset_peak_rss() -> bool:
    """Reset this process's resident-set high-water mark (VmHWM; Linux >= 4.0). False where the
    kernel does not allow it (then VmHWM is the process's lifetime peak)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def status_kb(field: str) -> Optional[int]:
    """A kB field of /proc/self/status (``"VmRSS"``, ``"VmHWM"``, ...), or None where unavailable."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None
