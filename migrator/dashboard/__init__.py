"""The migration dashboard: a web page of the migration's state, its users three ways, their time travel and the
verify reports, with the phase actions behind a token (`migrator serve dashboard`, `migrator.dashboard:app`)."""

from typing import Any

from . import app as _module

create_app = _module.create_app
globals().pop("app", None)  # the name `app` is the ASGI app (below), not the submodule

__all__ = ["app", "create_app"]


def __getattr__(name: str) -> Any:
    """Returns `app` (the environment's dashboard), built on first access: nothing connects at import."""
    if name == "app":
        built = _module.app
        globals()["app"] = built
        return built
    raise AttributeError(name)
