"""Give the memory of a large request back to the system once it is answered.

CPython returns freed objects to glibc's allocator, which keeps the pages of its arenas for reuse: after a
few 10 MB batch bodies (the body, the parsed JSON, the NumPy input) a worker's RSS stays ~100 MB higher for
good. Two remedies, both glibc-only (elsewhere, musl or macOS, they do nothing):

* :func:`configure_allocator` fixes glibc's mmap threshold at :data:`MMAP_THRESHOLD`. By default glibc
  raises it after each large free (up to 32 MB), so later request bodies land in the heap, where a few live
  objects above them keep the pages; with a fixed threshold every large buffer is its own mapping and is
  unmapped when freed. Each fresh mapping costs page faults, so the services run the API with
  ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (``infra.catalog.API_ALLOCATOR_ENV``): those mappings get
  transparent huge pages (where the kernel's THP mode is ``madvise`` or ``always``).
* :func:`release_free_memory` asks glibc to hand free heap pages back (``malloc_trim(0)``, which also
  releases unused pages inside the heap).
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
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
MMAP_THRESHOLD = 256 * 1024  # allocations from this size on get their own mapping


@functools.cache
def configure_allocator() -> bool:
    """Fix glibc's mmap threshold (once per process); False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    return bool(mallopt and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
