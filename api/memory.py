"""Give the memory of a large request back to the system once it is answered.

CPython returns freed objects to glibc's allocator, which keeps the pages of its arenas for reuse: after a
few 10 MB batch bodies (the body, the parsed JSON, the NumPy input) a worker's RSS stays ~100 MB higher for
good. :func:`release_free_memory` asks glibc to hand free pages back (``malloc_trim(0)``, which also
releases unused pages inside the heap); elsewhere (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc
        return None


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
