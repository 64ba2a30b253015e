"""asyncio versions of the SDK's calls: each runs the blocking call on a worker thread
(asyncio.to_thread), so an event loop is never held up by a sandbox."""

from __future__ import annotations

import asyncio
from typing import Any, List

from .sandbox import CommandResult, Sandbox, SandboxInfo


class AsyncCommands:
    def __init__(self, sandbox: Sandbox):
        self._sandbox = sandbox

    async def run(self, command: Any, **options: Any) -> CommandResult:
        return await asyncio.to_thread(self._sandbox.commands.run, command, **options)


class AsyncFiles:
    def __init__(self, sandbox: Sandbox):
        self._sandbox = sandbox

    async def read(self, path: str, **options: Any) -> Any:
        return await asyncio.to_thread(self._sandbox.files.read, path, **options)

    async def write(self, path: str, data: Any) -> int:
        return await asyncio.to_thread(self._sandbox.files.write, path, data)

    async def list(self, path: str) -> List[Any]:
        return await asyncio.to_thread(self._sandbox.files.list, path)

    async def get_info(self, path: str, **options: Any) -> Any:
        return await asyncio.to_thread(self._sandbox.files.get_info, path, **options)


class AsyncSandbox:
    def __init__(self, sandbox: Sandbox):
        self._sandbox = sandbox
        self.name = sandbox.name
        self.commands = AsyncCommands(sandbox)
        self.files = AsyncFiles(sandbox)

    @classmethod
    async def create(cls, **options: Any) -> "AsyncSandbox":
        return cls(await asyncio.to_thread(lambda: Sandbox.create(**options)))

    @classmethod
    async def list(cls, **where: Any) -> List[SandboxInfo]:
        """``socket_path``, or ``url`` and ``token``, as for Sandbox.list."""
        return await asyncio.to_thread(lambda: Sandbox.list(**where))

    async def info(self) -> SandboxInfo:
        return await asyncio.to_thread(self._sandbox.info)

    async def kill(self) -> None:
        await asyncio.to_thread(self._sandbox.kill)

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.to_thread(self._sandbox.__exit__, *exc)
