"""Python SDK for forkbox: microVM sandboxes served by forkboxd.

    from forkbox import Sandbox
    with Sandbox.create(image="base") as sb:
        print(sb.commands.run("uname -a").stdout)

Standard library only. See docs/api.yaml for the HTTP API underneath.
"""

from ._errors import Conflict, ForkboxError, NotFound, PoolExhausted
from ._http import DEFAULT_TIMEOUT, default_socket_path
from .client import Client
from .sandbox import (CommandResult, Commands, FileEntry, FileList, Files,
                      Sandbox)

__version__ = "0.1.0"

# Tracebacks and reprs name the public path, not the private module.
for _cls in (ForkboxError, NotFound, Conflict, PoolExhausted):
    _cls.__module__ = __name__
del _cls

__all__ = [
    "Client", "Sandbox", "Commands", "Files", "CommandResult", "FileEntry",
    "FileList", "ForkboxError", "NotFound", "Conflict", "PoolExhausted",
    "DEFAULT_TIMEOUT", "default_socket_path",
]
