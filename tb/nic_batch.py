"""Several socket calls outstanding at once on the RTL NIC (``NicHost.calls``).

A batch of calls must reach the NIC the way concurrent processes reach it: every call's host
command (and its write data) queued on the host command port back to back, then the clock
runs once. But the OS driver (``tb/nic_os.py``) is plain synchronous code: a call issues a
host command and needs its answer before it goes on. So each call of the batch runs in a
thread of its own, one thread at a time, in list order:

1. a call runs until it issues its first host command; that command is queued on the bench
   (``NicBench.queue_host``) without running the clock, and the call is parked. A call that
   finishes without a host command (fork, dup, an EBADF found by the OS) is simply done. Other
   port operations on the way (control commands) run at once, as they would for one call;
2. once every call is done or parked, the bench settles once and hands back the answers of
   all the queued commands, in queue order (``NicBench.take_host``);
3. each parked call gets its answer and runs to its end, in list order; any further host
   command it issues (poll on several fds) runs as a single command does.

Only the thread running the driver (the cocotb ``bridge`` thread, "the coordinator") may
touch the simulator: a call's thread asks it, through a pair of queues, to run each port
operation for it.
"""

import queue
import threading

from model.scenario import Result, run_call

__all__ = ["run_batch"]

# port operations that run the simulator, and so must run in the coordinator's thread
_BLOCKING = ("host", "control", "send_frame", "send_frames", "raw_tx", "tick", "settle", "take_host")


class _Call:
    """One call of a batch, in its own thread."""

    def __init__(self, processes, pid, op, args):
        self.requests: queue.Queue = queue.Queue()     # call -> coordinator
        self.replies: queue.Queue = queue.Queue()      # coordinator -> call
        self.queued = False                            # its first host command is queued
        self.result: Result | BaseException | None = None
        self.thread = threading.Thread(target=self._body, args=(processes, pid, op, args),
                                       daemon=True, name=f"nic call {op} pid {pid}")

    def _body(self, processes, pid, op, args):
        try:
            self.result = run_call(processes, pid, op, args)
        except BaseException as err:        # handed to the coordinator, which raises it
            self.result = err
        self.requests.put(("done", None))

    def ask(self, kind, payload):
        """From the call's thread: have the coordinator do `kind` and wait for the answer."""
        self.requests.put((kind, payload))
        ok, value = self.replies.get()
        if not ok:
            raise value
        return value


class _BatchPort:
    """The NicPort as a call of a batch sees it (see the module docstring)."""

    def __init__(self, port, calls: dict):
        self._port, self._calls = port, calls

    def __getattr__(self, name):
        real = getattr(self._port, name)
        if name not in _BLOCKING:
            return real

        def proxied(*args):
            call = self._calls.get(threading.current_thread())
            if call is None:                                # the coordinator itself
                return real(*args)
            if name == "host" and not call.queued:
                call.queued = True
                return call.ask("queue", args)
            return call.ask("port", (real, args))
        return proxied


def _serve(port, call: _Call) -> bool:
    """Run `call`'s port requests until it is done (True) or parked on a queued host
    command (False)."""
    while True:
        kind, payload = call.requests.get()
        if kind == "done":
            return True
        if kind == "queue":
            port.queue_host(*payload)
            return False
        fn, args = payload
        try:
            call.replies.put((True, fn(*args)))
        except BaseException as err:
            call.replies.put((False, err))


def run_batch(host, batch: list[tuple]) -> list[Result]:
    """Run `batch` (``(pid, op, *args)`` each) on NicHost `host`: see the module docstring."""
    port = host.port
    calls = [_Call(host.processes, pid, op, tuple(args)) for pid, op, *args in batch]
    by_thread = {call.thread: call for call in calls}
    host.port = _BatchPort(port, by_thread)
    try:
        parked = []
        for call in calls:
            call.thread.start()
            if not _serve(port, call):
                parked.append(call)
        if parked:
            answers = port.take_host()
            for call, answer in zip(parked, answers):
                call.replies.put((True, answer))
                _serve(port, call)             # its later host commands are not "queue"
    finally:
        host.port = port
    host._pump()
    for call in calls:
        call.thread.join()
    for call in calls:
        if isinstance(call.result, BaseException):
            raise call.result
    return [call.result for call in calls]
