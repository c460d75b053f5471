"""Give memory back to the operating system after a large, short-lived job (a preview of a big file).

Python frees objects into the C allocator, and glibc's malloc keeps freed heap pages for reuse: a
server that once read a 50 MB table would go on holding the gigabytes it briefly needed. After such
a job, `release_freed_memory()` collects cycles, asks glibc to return free pages (`malloc_trim`),
and asks Arrow's allocator to do the same for its buffers.
"""

from __future__ import annotations

import ctypes
import gc
import sys


def release_freed_memory(collect: bool = True) -> None:
    """`collect`: run the cycle collector first (a few hundred ms once torch is imported); a stage whose
    large objects are arrays freed by reference counting does without."""
    if collect:
        gc.collect()
    if "pyarrow" in sys.modules:  # only if something used Arrow; importing it here would cost memory
        try:
            sys.modules["pyarrow"].default_memory_pool().release_unused()
        except AttributeError:  # older pyarrow
            pass
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to trim
        pass
