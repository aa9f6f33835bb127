"""Stacks a packetdrill script can run against: ``linux``, ``model`` and ``rtl``."""

__all__ = ["BackendUnavailable", "make_backend", "BACKENDS"]

BACKENDS = ("linux", "model", "rtl")


class BackendUnavailable(Exception):
    """The backend cannot run here (not root, not built yet, ...); the message says why."""


def make_backend(name: str, config):
    if name == "linux":
        from tb.netns import unavailable_reason
        reason = unavailable_reason()
        if reason is not None:
            raise BackendUnavailable(f"the linux backend {reason}")
        from .linux import LinuxBackend
        return LinuxBackend(config)
    if name == "model":
        from .model import ModelBackend
        return ModelBackend(config)
    if name == "rtl":
        raise BackendUnavailable("the rtl backend runs inside a simulator: use "
                                 "tb.packetdrill.rtl.run_on_rtl (python -m tb.packetdrill does)")
    raise BackendUnavailable(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
