"""Sandboxes: one microVM each, as momin serve keeps them (docs/sdk.md)."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from ._transport import Client
from .errors import MominError, from_problem

Command = Union[str, Sequence[str]]


@dataclass
class CommandResult:
    """A finished command: its output, and how it ended."""

    stdout: str
    stderr: str
    exit_code: Optional[int]
    signal: Optional[int] = None
    timed_out: bool = False
    stdout_bytes: bytes = b""
    stderr_bytes: bytes = b""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class SandboxInfo:
    name: str
    state: str
    pid: Optional[int] = None
    vcpus: Optional[int] = None
    memory_mib: Optional[int] = None
    parent: Optional[str] = None
    children: List[str] = field(default_factory=list)
    managed: bool = False
    idle_timeout_seconds: Optional[float] = None
    created_by: Optional[str] = None

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "SandboxInfo":
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def _argv(command: Command) -> List[str]:
    """A string runs through /bin/sh -c, as E2B's commands.run does; a list is argv as it is."""
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    argv = list(command)
    if not argv:
        raise ValueError("an empty command")
    return argv


class Commands:
    def __init__(self, sandbox: "Sandbox"):
        self._sandbox = sandbox

    def run(self, command: Command, *, cwd: Optional[str] = None, envs: Optional[Dict[str, str]] = None,
            stdin: Optional[Union[str, bytes]] = None, timeout: Optional[float] = None,
            on_stdout: Optional[Callable[[str], None]] = None, on_stderr: Optional[Callable[[str], None]] = None,
            background: bool = False) -> Any:
        """Runs a command to its end, through the sandbox's policy. ``on_stdout`` and
        ``on_stderr`` hear the output as it comes (decoded as UTF-8). A non-zero exit is a
        result, not an error; a denial raises PolicyDenied. With ``background=True`` it returns
        a CommandHandle at once (wait for it, or kill it); the server keeps its newest output."""
        if background and (on_stdout or on_stderr):
            raise ValueError("on_stdout and on_stderr are for a command run to its end; a background one keeps its output (handle.wait())")
        payload: Dict[str, Any] = {"argv": _argv(command)}
        if cwd is not None:
            payload["cwd"] = cwd
        if envs:
            payload["env"] = [f"{name}={value}" for name, value in envs.items()]
        if stdin is not None:
            data = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
            payload["stdin"] = base64.b64encode(data).decode()
        if timeout is not None:
            payload["timeout_seconds"] = timeout
        client = self._sandbox._client
        if background:
            payload["background"] = True
            return CommandHandle(self._sandbox, client.json("POST", client.path("v1", "sandboxes", self._sandbox.name, "commands"), payload))
        out, err = bytearray(), bytearray()
        end: Optional[Dict[str, Any]] = None
        for event in client.lines("POST", client.path("v1", "sandboxes", self._sandbox.name, "commands"), payload):
            kind = event.get("type")
            if kind in ("stdout", "stderr"):
                data = base64.b64decode(event.get("data", ""))
                (out if kind == "stdout" else err).extend(data)
                callback = on_stdout if kind == "stdout" else on_stderr
                if callback:
                    callback(data.decode("utf-8", "replace"))
            elif kind == "exit":
                end = event
            elif kind == "error":
                problem = event.get("problem") or {}
                raise from_problem(int(problem.get("status", 502)), problem)
        if end is None:
            raise MominError(0, "the command's stream ended without its exit (the server or the connection failed)")
        return CommandResult(stdout=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"),
                             exit_code=end.get("exit_code"), signal=end.get("signal"), timed_out=bool(end.get("timed_out")),
                             stdout_bytes=bytes(out), stderr_bytes=bytes(err))


    def list(self) -> List["CommandHandle"]:
        """The sandbox's background commands, running and done, oldest first."""
        client = self._sandbox._client
        answer = client.json("GET", client.path("v1", "sandboxes", self._sandbox.name, "commands"))
        return [CommandHandle(self._sandbox, item) for item in answer["commands"]]

    def kill(self, command_id: str) -> None:
        """Kills a background command by its id (its handle's ``id``)."""
        CommandHandle(self._sandbox, {"id": command_id, "argv": [], "state": "running"}).kill()


class CommandHandle:
    """A command started with ``background=True``: ``wait()`` for its result, or ``kill()`` it.
    ``state`` is what the server last said: "running" or "done"."""

    def __init__(self, sandbox: "Sandbox", info: Dict[str, Any]):
        self._sandbox = sandbox
        self.id: str = info["id"]
        self.argv: List[str] = info.get("argv", [])
        self._info = info

    @property
    def state(self) -> str:
        return self._info.get("state", "running")

    @property
    def stdout(self) -> str:
        """The newest output kept, as the server last said (``refresh()`` asks again)."""
        return base64.b64decode(self._info.get("stdout", "")).decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return base64.b64decode(self._info.get("stderr", "")).decode("utf-8", "replace")

    def _path(self) -> str:
        return self._sandbox._client.path("v1", "sandboxes", self._sandbox.name, "commands", self.id)

    def refresh(self) -> "CommandHandle":
        self._info = self._sandbox._client.json("GET", self._path())
        return self

    def kill(self) -> None:
        """Asks the guest to kill the command's process group; ``wait()`` then returns its end."""
        self._info = self._sandbox._client.json("DELETE", self._path())

    def wait(self, timeout: Optional[float] = None, poll: float = 0.2) -> CommandResult:
        """Waits until the command is done and returns its result, with the newest output the
        server kept (256 KiB of each stream). Raises TimeoutError after ``timeout`` seconds, and
        the typed error if the call failed (the VM, a denial)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.refresh().state != "done":
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"background command {self.id} still running after {timeout} s")
            time.sleep(poll)
        info = self._info
        if info.get("problem"):
            problem = info["problem"]
            raise from_problem(int(problem.get("status", 502)), problem)
        out, err = base64.b64decode(info.get("stdout", "")), base64.b64decode(info.get("stderr", ""))
        return CommandResult(stdout=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"),
                             exit_code=info.get("exit_code"), signal=info.get("signal"), timed_out=bool(info.get("timed_out")),
                             stdout_bytes=out, stderr_bytes=err)


@dataclass
class EntryInfo:
    """One entry of a directory listing: its name, its type ("file", "directory", "symlink" or
    "other") and its path in the sandbox."""
    name: str
    type: str
    path: str


@dataclass
class FileInfo:
    """A path as stat(2) (or lstat(2)) saw it in the sandbox."""
    path: str
    type: str
    size: int
    mode: int
    modified_time: float
    uid: int
    gid: int


class Files:
    def __init__(self, sandbox: "Sandbox"):
        self._sandbox = sandbox

    def list(self, path: str) -> List[EntryInfo]:
        """The entries of a directory, as the guest lists them (no "." or "..")."""
        client = self._sandbox._client
        answer = client.json("GET", client.path("v1", "sandboxes", self._sandbox.name, "files", "list", path=path))
        base = answer["path"].rstrip("/")
        return [EntryInfo(name=entry["name"], type=entry["type"], path=f"{base}/{entry['name']}") for entry in answer["entries"]]

    def get_info(self, path: str, *, follow_symlinks: bool = False) -> FileInfo:
        """Type, size, permission bits, modification time and owner of a path; a final
        symlink is described itself unless ``follow_symlinks``."""
        client = self._sandbox._client
        answer = client.json("GET", client.path("v1", "sandboxes", self._sandbox.name, "files", "stat", path=path,
                                                follow="true" if follow_symlinks else "false"))
        return FileInfo(path=answer["path"], type=answer["type"], size=answer["size"], mode=answer["mode"],
                        modified_time=answer["modified_seconds"], uid=answer["uid"], gid=answer["gid"])

    def read(self, path: str, *, format: str = "text") -> Union[str, bytes]:
        """The file's contents: text (UTF-8) by default, bytes with format="bytes"."""
        client = self._sandbox._client
        data = client.download(client.path("v1", "sandboxes", self._sandbox.name, "files", path=path))
        return data if format == "bytes" else data.decode("utf-8", "replace")

    def write(self, path: str, data: Union[str, bytes]) -> int:
        """Creates or replaces the file; returns the bytes written."""
        client = self._sandbox._client
        payload = data.encode() if isinstance(data, str) else bytes(data)
        answer = client.upload(client.path("v1", "sandboxes", self._sandbox.name, "files", path=path), payload)
        return int(answer["bytes"])


class Sandbox:
    """A running sandbox. ``Sandbox.create`` boots one; ``kill`` (or leaving a ``with`` block)
    stops it. Sandboxes outlive the program that made them: momin serve stops one after its idle
    timeout, or when killed."""

    def __init__(self, name: str, client: Optional[Client] = None):
        self.name = name
        self._client = client or Client()
        self.commands = Commands(self)
        self.files = Files(self)

    @property
    def sandbox_id(self) -> str:
        return self.name

    @classmethod
    def create(cls, *, name: Optional[str] = None, image: Optional[str] = None, policy: Optional[str] = None,
               vcpus: Optional[int] = None, memory_mib: Optional[int] = None, timeout: Optional[float] = None,
               idle_timeout: Optional[float] = None, socket_path: Optional[str] = None, url: Optional[str] = None,
               token: Optional[str] = None, **options: Any) -> "Sandbox":
        """Boots a sandbox and returns once its init answers. ``timeout`` is its lifetime in
        seconds, ``idle_timeout`` how long it may go unused; ``options`` are the rest of the
        create request's fields (disks, overlay, scratch, audit, buckets: docs/api.md).
        ``socket_path``, or ``url`` and ``token``, say which server (``Client``)."""
        client = Client(socket_path, url=url, token=token)
        payload: Dict[str, Any] = {key: value for key, value in {
            "name": name, "image": image, "policy": policy, "vcpus": vcpus, "memory_mib": memory_mib,
            "timeout_seconds": timeout, "idle_timeout_seconds": idle_timeout}.items() if value is not None}
        payload.update({key: value for key, value in options.items() if value is not None})
        info = client.json("POST", client.path("v1", "sandboxes"), payload)
        return cls(info["name"], client)

    @classmethod
    def connect(cls, name: str, *, socket_path: Optional[str] = None, url: Optional[str] = None,
                token: Optional[str] = None) -> "Sandbox":
        """A sandbox that is already running (raises NotFound otherwise)."""
        sandbox = cls(name, Client(socket_path, url=url, token=token))
        sandbox.info()
        return sandbox

    @classmethod
    def list(cls, *, socket_path: Optional[str] = None, url: Optional[str] = None,
             token: Optional[str] = None) -> List[SandboxInfo]:
        client = Client(socket_path, url=url, token=token)
        return [SandboxInfo.from_json(item) for item in client.json("GET", client.path("v1", "sandboxes"))["sandboxes"]]

    def info(self) -> SandboxInfo:
        return SandboxInfo.from_json(self._client.json("GET", self._client.path("v1", "sandboxes", self.name)))

    def is_running(self) -> bool:
        from .errors import NotFound
        try:
            return self.info().state == "running"
        except NotFound:
            return False

    def kill(self) -> None:
        """Stops the sandbox and its sub-agents; its state is gone."""
        self._client.json("DELETE", self._client.path("v1", "sandboxes", self.name))

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.kill()
        except MominError:
            pass

    def __repr__(self) -> str:
        return f"Sandbox({self.name!r})"
