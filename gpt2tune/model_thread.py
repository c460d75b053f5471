"""The one thread that loads and runs the models answering questions in this process.

Why one: PyTorch's CPU kernels run on OpenMP, and each thread that runs a parallel kernel keeps its
own team of OpenMP workers for as long as it lives. Once a process holds more of those threads than
there are cores, GNU OpenMP stops letting idle workers spin and puts them to sleep between kernels,
so each of the ~50 matrix products of a decoding step waits for its workers to wake. GPT-2 124M with
int8 weights, on 2 cores: 11.8 ms/token when one thread loads and runs it, 18 ms/token when it is
loaded in one thread and run in another (bench/RESULTS.md). A thread per streamed answer, as
transformers' streaming recipe has it, pays that on every token.

Jobs run one at a time, in the order they come: on a CPU two answers at once would only share the
same cores. Training runs in its own process and is not affected.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

_jobs: queue.SimpleQueue = queue.SimpleQueue()
_thread: threading.Thread | None = None
_start_lock = threading.Lock()


def submit(fn, *args, **kwargs) -> Future:
    """Run `fn(*args, **kwargs)` on the model thread; its Future, not waited for."""
    global _thread
    future: Future = Future()
    _jobs.put((future, fn, args, kwargs))
    with _start_lock:
        if _thread is None or not _thread.is_alive():
            # a daemon: a process that exits mid-answer does not wait for the answer
            _thread = threading.Thread(target=_work, name="gpt2tune-model", daemon=True)
            _thread.start()
    return future


def run(fn, *args, **kwargs):
    """`fn(*args, **kwargs)` on the model thread, waited for (at once when called from it)."""
    if on_model_thread():
        return fn(*args, **kwargs)
    return submit(fn, *args, **kwargs).result()


def on_model_thread() -> bool:
    return threading.current_thread() is _thread


def _work() -> None:
    while True:
        future, fn, args, kwargs = _jobs.get()
        if not future.set_running_or_notify_cancel():
            continue  # cancelled while it waited
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001  (handed to whoever waits for the Future)
            future.set_exception(error)
