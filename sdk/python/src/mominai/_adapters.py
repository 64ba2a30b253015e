"""What the framework adapters (deepagents.py, openai_agents.py) share."""

from __future__ import annotations

import posixpath
from typing import Union

from .errors import GuestError
from .sandbox import Sandbox


def write_making_parent(sandbox: Sandbox, path: str, data: Union[str, bytes]) -> None:
    """``files.write``; where the guest says the file's directory is not there, that directory
    is made with ``mkdir -p`` (a command, which the policy judges as one) and the write is made
    again. The frameworks expect a write to a new path to succeed."""
    try:
        sandbox.files.write(path, data)
    except GuestError as missing:
        if not missing.missing:
            raise
        made = sandbox.commands.run(["/bin/sh", "-c", 'mkdir -p -- "$1"', "sh", posixpath.dirname(path)])
        if not made.ok:
            raise
        sandbox.files.write(path, data)
