"""MominAI sandboxes as an OpenAI Agents SDK sandbox client (docs/sdk.md, "OpenAI Agents SDK").

``MominSandboxClient`` creates one MominAI sandbox per session. The session's commands, reads and
writes are calls of the sandbox, so its policy judges each one and its audit log records it. A
``SandboxAgent`` run with ``RunConfig(sandbox=SandboxRunConfig(client=MominSandboxClient(),
options=MominSandboxClientOptions(policy="coding")))`` works in a microVM. Needs the
``openai-agents`` package (only this module of mominai imports it).
"""

from __future__ import annotations

import asyncio
import io
import posixpath
from pathlib import Path
from typing import Any, Literal, Optional

from agents.sandbox.errors import (
    ExecTimeoutError,
    ExecTransportError,
    WorkspaceArchiveReadError,
    WorkspaceArchiveWriteError,
    WorkspaceReadNotFoundError,
)
from agents.sandbox.manifest import Manifest
from agents.sandbox.session.base_sandbox_session import BaseSandboxSession
from agents.sandbox.session.sandbox_client import BaseSandboxClient, BaseSandboxClientOptions
from agents.sandbox.session.sandbox_session import SandboxSession
from agents.sandbox.session.sandbox_session_state import SandboxSessionState
from agents.sandbox.snapshot import SnapshotBase, SnapshotSpec, resolve_snapshot
from agents.sandbox.types import ExecResult, User

from ._adapters import write_making_parent
from .errors import GuestError, MominError, NotFound, PolicyDenied
from .sandbox import Sandbox


class MominSandboxClientOptions(BaseSandboxClientOptions):
    """What each new sandbox is made with: ``Sandbox.create``'s arguments."""

    type: Literal["mominai"] = "mominai"
    image: Optional[str] = None
    policy: Optional[str] = None
    vcpus: Optional[int] = None
    memory_mib: Optional[int] = None
    idle_timeout: Optional[float] = None

    def __init__(self, image: Optional[str] = None, policy: Optional[str] = None, vcpus: Optional[int] = None,
                 memory_mib: Optional[int] = None, idle_timeout: Optional[float] = None, *,
                 type: Literal["mominai"] = "mominai") -> None:
        super().__init__(type=type, image=image, policy=policy, vcpus=vcpus, memory_mib=memory_mib, idle_timeout=idle_timeout)


class MominSandboxSessionState(SandboxSessionState):
    """A session's state: the sandbox it drives, by name, so that a saved run resumes in it."""

    type: Literal["mominai"] = "mominai"
    sandbox_name: str


class MominSandboxSession(BaseSandboxSession):
    """One MominAI sandbox as an Agents SDK session. Commands run through ``commands.run``, a
    program named without a path found as ``SEARCH`` says. Reads and writes go through the files
    API and its rules."""

    state: MominSandboxSessionState

    def __init__(self, *, state: MominSandboxSessionState, sandbox: Sandbox) -> None:
        self.state = state
        self._sandbox = sandbox

    @property
    def sandbox(self) -> Sandbox:
        return self._sandbox

    # Where a bare program name is looked for, in order: a policy judges programs by absolute
    # path, and the SDK runs some by name (``sh -lc``, ``mkdir``).
    SEARCH = ("/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin", "/sbin")

    async def _exec_internal(self, *command: str | Path, timeout: float | None = None) -> ExecResult:
        argv = [str(part) for part in command]
        if not argv:
            raise ExecTransportError(command=argv, message="an empty command")
        # A path is run as it is; sh is /bin/sh, as POSIX puts it; any other name, the first of
        # SEARCH the guest has.
        if "/" in argv[0]:
            places = ("",)
        else:
            places = ("/bin/",) if argv[0] == "sh" else tuple(place + "/" for place in self.SEARCH)
        for place in places:
            try:
                return await self._run([place + argv[0]] + argv[1:], timeout)
            except GuestError as missing:
                if not missing.missing:
                    raise ExecTransportError(command=argv, cause=missing, message=missing.detail) from missing
        # As a shell says it: 127, not found.
        where = f" in {':'.join(place.rstrip('/') for place in places)}" if places != ("",) else ""
        return ExecResult(stdout=b"", stderr=f"{argv[0]}: not found{where}\n".encode(), exit_code=127)

    async def _run(self, argv: list[str], timeout: float | None) -> ExecResult:
        """One command; a guest that has no such program raises GuestError for the caller."""
        # In the workspace once it is there, as the SDK's shell tool expects; at / before.
        cwd = self.state.manifest.root if self.state.workspace_root_ready else None
        try:
            result = await asyncio.to_thread(self._sandbox.commands.run, argv, timeout=timeout, cwd=cwd)
        except GuestError:
            raise
        except PolicyDenied as denied:
            # The model sees the rule; 126 is a shell's "found but not run".
            message = f"denied by the sandbox's policy (rule {denied.rule}): {denied.reason or denied.detail}\n"
            return ExecResult(stdout=b"", stderr=message.encode(), exit_code=126)
        except MominError as error:
            raise ExecTransportError(command=argv, cause=error, message=error.detail) from error
        if result.timed_out:
            raise ExecTimeoutError(command=argv, timeout_s=timeout)
        exit_code = result.exit_code if result.exit_code is not None else 128 + (result.signal or 0)
        return ExecResult(stdout=result.stdout_bytes, stderr=result.stderr_bytes, exit_code=exit_code)

    async def read(self, path: Path, *, user: str | User | None = None) -> io.IOBase:
        target = self.normalize_path(path)
        try:
            data = await asyncio.to_thread(self._sandbox.files.read, str(target), format="bytes")
        except GuestError as error:
            if error.missing:
                raise WorkspaceReadNotFoundError(path=path, cause=error) from error
            raise WorkspaceArchiveReadError(path=path, cause=error) from error
        except MominError as error:
            raise WorkspaceArchiveReadError(path=path, cause=error) from error
        return io.BytesIO(data)

    async def write(self, path: Path, data: io.IOBase, *, user: str | User | None = None) -> None:
        target = self.normalize_path(path, for_write=True)
        payload = data.read()
        payload = payload.encode() if isinstance(payload, str) else bytes(payload)
        try:
            await self._write(str(target), payload)
        except MominError as error:
            raise WorkspaceArchiveWriteError(path=target, cause=error) from error

    async def _write(self, path: str, payload: bytes) -> None:
        await asyncio.to_thread(write_making_parent, self._sandbox, path, payload)

    async def running(self) -> bool:
        try:
            return await asyncio.to_thread(self._sandbox.is_running)
        except MominError:
            return False

    async def persist_workspace(self) -> io.IOBase:
        """The workspace as a tar archive, made by tar in the guest."""
        root = self.state.manifest.root
        result = await asyncio.to_thread(self._sandbox.commands.run,
                                         ["/bin/sh", "-c", 'cd -- "$1" && tar -cf - .', "sh", root])
        if not result.ok:
            raise WorkspaceArchiveReadError(path=Path(root), context={"reason": result.stderr[-500:]})
        return io.BytesIO(result.stdout_bytes)

    async def hydrate_workspace(self, data: io.IOBase) -> None:
        """Unpacks a tar archive into the workspace, by way of a file in the guest."""
        root = self.state.manifest.root
        archive = posixpath.join(posixpath.dirname(root.rstrip("/")) or "/", ".momin-hydrate.tar")
        payload = data.read()
        try:
            await self._write(archive, bytes(payload))
        except MominError as error:
            raise WorkspaceArchiveWriteError(path=Path(archive), cause=error) from error
        script = 'mkdir -p -- "$1" && tar -xf "$2" -C "$1"; status=$?; rm -f -- "$2"; exit $status'
        result = await asyncio.to_thread(self._sandbox.commands.run, ["/bin/sh", "-c", script, "sh", root, archive])
        if not result.ok:
            raise WorkspaceArchiveWriteError(path=Path(root), context={"reason": result.stderr[-500:]})

    async def _shutdown_backend(self) -> None:
        """The sandbox stays until the client deletes it (``MominSandboxClient.delete``)."""


class MominSandboxClient(BaseSandboxClient[Optional[MominSandboxClientOptions]]):
    """Makes a MominAI sandbox for each new session, reaching momin serve as ``Sandbox.create``
    does (``socket_path=``, or ``url=`` and ``token=``, or their environment variables), and stops
    it when the session is deleted."""

    backend_id = "mominai"
    supports_default_options = True

    def __init__(self, **connection: Any) -> None:
        self._connection = connection

    async def create(self, *, snapshot: SnapshotSpec | SnapshotBase | None = None, manifest: Manifest | None = None,
                     options: Optional[MominSandboxClientOptions] = None) -> SandboxSession:
        options = options or MominSandboxClientOptions()
        manifest = manifest if manifest is not None else Manifest()
        self._validate_manifest_for_create(manifest)
        arguments = {key: value for key, value in (("image", options.image), ("policy", options.policy), ("vcpus", options.vcpus),
                                                   ("memory_mib", options.memory_mib), ("idle_timeout", options.idle_timeout))
                     if value is not None}
        sandbox = await asyncio.to_thread(lambda: Sandbox.create(**arguments, **self._connection))
        state = MominSandboxSessionState(manifest=manifest, snapshot=resolve_snapshot(snapshot, sandbox.name),
                                         sandbox_name=sandbox.name)
        return self._wrap_session(MominSandboxSession(state=state, sandbox=sandbox))

    async def delete(self, session: SandboxSession) -> SandboxSession:
        inner = session._inner
        if not isinstance(inner, MominSandboxSession):
            raise TypeError("MominSandboxClient.delete expects a MominSandboxSession")
        try:
            await asyncio.to_thread(inner.sandbox.kill)
        except NotFound:
            pass  # already gone: stopped, or idle past its limit
        return session

    async def resume(self, state: SandboxSessionState) -> SandboxSession:
        if not isinstance(state, MominSandboxSessionState):
            raise TypeError("MominSandboxClient.resume expects a MominSandboxSessionState")
        sandbox = await asyncio.to_thread(lambda: Sandbox.connect(state.sandbox_name, **self._connection))
        return self._wrap_session(MominSandboxSession(state=state, sandbox=sandbox))

    def deserialize_session_state(self, payload: dict[str, object]) -> SandboxSessionState:
        return self._deserialize_session_state_payload(payload, MominSandboxSessionState)
