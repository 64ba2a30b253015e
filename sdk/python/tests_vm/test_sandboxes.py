"""Real sandboxes through the SDK, as an agent framework would use them: each call reaches a
microVM through momin serve, its policy and its audit log (Tests/rig/sdk-scenarios checks the
log afterwards)."""

import asyncio
import os

import pytest

from mominai import NotFound, PolicyDenied, Sandbox
from mominai.aio import AsyncSandbox


@pytest.fixture(scope="module")
def box(client):
    sandbox = Sandbox.create(policy="sdk", memory_mib=256, idle_timeout=600)
    yield sandbox
    sandbox.kill()


def test_a_created_sandbox_runs_and_is_its_creators(box):
    info = box.info()
    assert info.state == "running" and info.managed
    assert info.created_by.startswith("token sdk from 10.0.2.2:") or info.created_by.startswith("token sdk from 127.")
    assert box.name in [listed.name for listed in Sandbox.list()]


def test_a_command_streams_its_output_and_exits_with_its_status(box):
    heard = []
    result = box.commands.run("echo hi $GREETING; echo oops >&2; exit 3", envs={"GREETING": "there"},
                              on_stdout=heard.append)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "hi there\n", "oops\n")
    assert "".join(heard) == "hi there\n"


def test_stdin_reaches_the_command(box):
    assert box.commands.run(["/bin/cat"], stdin=b"fed through stdin").stdout == "fed through stdin"


def test_a_file_written_reads_back_whole(box):
    data = os.urandom(300_000)
    assert box.files.write("/tmp/blob", data) == len(data)
    assert box.files.read("/tmp/blob", format="bytes") == data
    assert box.commands.run("wc -c < /tmp/blob").stdout.split() == ["300000"]


def test_a_denied_command_never_runs_and_names_the_rule(box):
    with pytest.raises(PolicyDenied) as caught:
        box.commands.run(["/bin/uname", "-r"])
    assert caught.value.status == 403 and caught.value.rule == "tools.exec"


def test_a_denied_read_names_the_rule(box):
    with pytest.raises(PolicyDenied) as caught:
        box.files.read("/etc/shadow")
    assert caught.value.rule == "tools.files.read"


def test_asyncio_reaches_the_same_sandbox(box):
    async def main():
        return await AsyncSandbox(box).commands.run("echo from asyncio")
    assert asyncio.run(main()).stdout == "from asyncio\n"


def test_leaving_a_with_block_stops_the_sandbox(client):
    with Sandbox.create(policy="sdk", memory_mib=256) as sandbox:
        assert sandbox.commands.run("echo inside").stdout == "inside\n"
        name = sandbox.name
    with pytest.raises(NotFound):
        Sandbox.connect(name)
