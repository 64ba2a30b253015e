"""The OpenAI Agents SDK on real sandboxes: MominSandboxClient's sessions through their own API
(commands, files, the workspace archived and restored), then a SandboxAgent run by the SDK's
Runner with its scripted model (agents.testing, no network) in a sandbox the client makes and
deletes. On the Debian image, under the sdk-debian policy."""

import asyncio
import io
import tarfile
from pathlib import Path

import pytest
from agents import RunConfig, Runner
from agents.items import ToolCallOutputItem
from agents.run_config import SandboxRunConfig
from agents.sandbox import Manifest, SandboxAgent, WorkspaceReadNotFoundError
from agents.testing.model import ScriptedModel, assistant_message, function_call

from mominai import NotFound, Sandbox
from mominai.openai_agents import MominSandboxClient, MominSandboxClientOptions

OPTIONS = MominSandboxClientOptions(image="debian", policy="sdk-debian", memory_mib=512, idle_timeout=600)


def test_a_session_runs_commands_moves_files_and_keeps_its_workspace(client):
    async def run():
        sandboxes = MominSandboxClient()
        session = await sandboxes.create(manifest=Manifest(root="/tmp/ws"), options=OPTIONS)
        name = session._inner.sandbox.name
        try:
            async with session:
                ran = await session.exec("echo hi; echo oops >&2; exit 3")
                assert (ran.exit_code, ran.stdout, ran.stderr) == (3, b"hi\n", b"oops\n")
                denied = await session.exec("/usr/bin/env", shell=False)
                assert denied.exit_code == 126 and b"rule tools.exec" in denied.stderr
                # The policy decides before the guest is asked; a program it allows that the
                # guest does not have is 127, as a shell says.
                assert (await session.exec("/bin/no-such-program", shell=False)).exit_code == 126
                absent = await session.exec("/usr/bin/momin-absent", shell=False)
                assert (absent.exit_code, absent.stderr) == (127, b"/usr/bin/momin-absent: not found\n")
                await session.write(Path("notes/a.txt"), io.BytesIO(b"first"))
                assert (await session.read(Path("notes/a.txt"))).read() == b"first"
                with pytest.raises(WorkspaceReadNotFoundError):
                    await session.read(Path("notes/absent"))
                archive = (await session.persist_workspace()).read()
                assert "./notes/a.txt" in tarfile.open(fileobj=io.BytesIO(archive)).getnames()
                await session.exec("rm -rf notes")
                with pytest.raises(WorkspaceReadNotFoundError):
                    await session.read(Path("notes/a.txt"))
                await session.hydrate_workspace(io.BytesIO(archive))
                assert (await session.read(Path("notes/a.txt"))).read() == b"first"
        finally:
            await sandboxes.delete(session)
        with pytest.raises(NotFound):
            Sandbox.connect(name)

    asyncio.run(run())


def test_a_sandbox_agent_runs_in_a_sandbox_the_client_makes_and_deletes(client):
    before = {info.name for info in Sandbox.list()}
    model = ScriptedModel([
        [function_call("exec_command", {"cmd": "echo $((6 * 7)) > answer.txt && cat answer.txt && uname -s && pwd"}, call_id="run")],
        [assistant_message("done")],
    ])
    agent = SandboxAgent(name="triage", instructions="Work in the sandbox.", model=model)
    config = RunConfig(sandbox=SandboxRunConfig(client=MominSandboxClient(), options=OPTIONS, manifest=Manifest(root="/tmp/agent-ws")))
    result = asyncio.run(Runner.run(agent, "find the answer", run_config=config))
    outputs = [str(item.output) for item in result.new_items if isinstance(item, ToolCallOutputItem)]
    assert len(outputs) == 1 and "42" in outputs[0] and "Linux" in outputs[0] and "/tmp/agent-ws" in outputs[0], outputs
    assert result.final_output == "done"
    model.assert_complete()
    assert {info.name for info in Sandbox.list()} == before, "the run's sandbox was deleted with its session"
