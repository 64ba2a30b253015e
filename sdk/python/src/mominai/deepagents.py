"""A MominAI sandbox as a LangChain deepagents backend (docs/sdk.md, "LangChain deepagents").

``MominBackend(sandbox)`` is deepagents' ``SandboxBackendProtocol``: ``execute`` runs a shell
command through the sandbox's policy, ``upload_files`` and ``download_files`` move files, and
deepagents' ``BaseSandbox`` builds ls, read, write, edit, glob and grep on those three. Every
call is judged and logged like any other; a denial comes back to the model naming the rule.
Needs the ``deepagents`` package (this module is the only part of mominai that imports it).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from deepagents.backends.protocol import ExecuteResponse, FileDownloadResponse, FileUploadResponse
from deepagents.backends.sandbox import BaseSandbox

from ._adapters import write_making_parent
from .errors import GuestError, MominError, NotFound, PolicyDenied
from .sandbox import Sandbox


def _file_error(error: MominError) -> str:
    """A failed file call as deepagents' standard error words, where one fits."""
    if isinstance(error, PolicyDenied):
        return "permission_denied"
    text = error.detail.lower()
    if isinstance(error, GuestError):
        if error.missing:
            return "file_not_found"
        if "is a directory" in text:
            return "is_directory"
        if "permission denied" in text:
            return "permission_denied"
    if isinstance(error, NotFound):
        return f"the sandbox is gone: {error.detail}"
    return error.detail


class MominBackend(BaseSandbox):
    """deepagents' sandbox backend over one MominAI sandbox, which it does not own: stop it
    yourself (``with Sandbox.create(...) as sandbox``). ``timeout`` is the default limit of a
    command in seconds; ``max_output`` cuts what one command returns to the model."""

    def __init__(self, sandbox: Sandbox, *, timeout: Optional[float] = None, max_output: int = 100_000):
        self._sandbox = sandbox
        self._timeout = timeout
        self._max_output = max_output

    @property
    def id(self) -> str:
        return self._sandbox.name

    def execute(self, command: str, *, timeout: Optional[int] = None) -> ExecuteResponse:
        # deepagents' 0 means no limit; the API's limits are positive.
        limit = self._timeout if timeout is None else (timeout or None)
        try:
            result = self._sandbox.commands.run(command, timeout=limit)
        except PolicyDenied as denied:
            return ExecuteResponse(output=f"denied by the sandbox's policy (rule {denied.rule}): {denied.reason or denied.detail}",
                                   exit_code=None)
        output = result.stdout + result.stderr
        if result.timed_out:
            output += f"\n(timed out after {limit} s)"
        truncated = len(output) > self._max_output
        return ExecuteResponse(output=output[: self._max_output], exit_code=result.exit_code, truncated=truncated)

    def upload_files(self, files: List[Tuple[str, bytes]]) -> List[FileUploadResponse]:
        answers = []
        for path, content in files:
            try:
                write_making_parent(self._sandbox, path, content)
                answers.append(FileUploadResponse(path=path))
            except MominError as error:
                answers.append(FileUploadResponse(path=path, error=_file_error(error)))
        return answers

    def download_files(self, paths: List[str]) -> List[FileDownloadResponse]:
        answers = []
        for path in paths:
            try:
                answers.append(FileDownloadResponse(path=path, content=self._sandbox.files.read(path, format="bytes")))
            except MominError as error:
                answers.append(FileDownloadResponse(path=path, error=_file_error(error)))
        return answers
