"""MominAI's Python SDK: sandboxes (microVMs) through momin serve (docs/sdk.md)."""

from .errors import (BadRequest, Conflict, Forbidden, GuestError, MominError, NoRoom, NotFound, PolicyDenied,
                     Unauthorized, VMFailed)
from .sandbox import CommandHandle, CommandResult, EntryInfo, FileInfo, Sandbox, SandboxInfo

__all__ = ["Sandbox", "SandboxInfo", "CommandResult", "CommandHandle", "EntryInfo", "FileInfo", "MominError", "BadRequest", "Unauthorized", "Forbidden", "PolicyDenied",
           "NotFound", "Conflict", "GuestError", "NoRoom", "VMFailed"]
__version__ = "0.1.0"
