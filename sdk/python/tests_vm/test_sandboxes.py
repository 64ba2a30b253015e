"""Real sandboxes through the SDK, as an agent framework would use them: each call reaches a
microVM through momin serve, its policy and its audit log (Tests/rig/sdk-scenarios checks the
log afterwards)."""

import asyncio
import os
import time

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


def test_a_directory_lists_and_a_file_stats_as_written(box):
    box.commands.run("mkdir -p /tmp/listed/sub && printf abc > /tmp/listed/a.txt && ln -s a.txt /tmp/listed/link")
    entries = {entry.name: (entry.type, entry.path) for entry in box.files.list("/tmp/listed")}
    assert entries == {"a.txt": ("file", "/tmp/listed/a.txt"), "sub": ("directory", "/tmp/listed/sub"),
                       "link": ("symlink", "/tmp/listed/link")}
    info = box.files.get_info("/tmp/listed/a.txt")
    assert (info.type, info.size, info.uid) == ("file", 3, 0)
    assert box.files.get_info("/tmp/listed/link").type == "symlink"
    assert box.files.get_info("/tmp/listed/link", follow_symlinks=True).type == "file"
    with pytest.raises(PolicyDenied) as caught:
        box.files.list("/etc")
    assert caught.value.rule == "tools.files.read"


def test_a_background_command_runs_on_and_is_waited_for(box):
    handle = box.commands.run("echo started; sleep 1; echo finished; exit 4", background=True)
    assert handle.state == "running" and handle.id.startswith("cmd-")
    assert handle.id in [listed.id for listed in box.commands.list()]
    result = handle.wait(timeout=120)
    assert (result.exit_code, result.stdout) == (4, "started\nfinished\n")
    assert [listed.state for listed in box.commands.list() if listed.id == handle.id] == ["done"]


def test_a_background_command_is_killed_by_its_handle(box):
    handle = box.commands.run(["/bin/sh", "-c", "echo up; sleep 600"], background=True)
    deadline = time.monotonic() + 60
    while "up" not in handle.refresh().stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    handle.kill()
    result = handle.wait(timeout=60)
    assert result.stdout == "up\n"
    assert result.signal == 9 and result.exit_code is None


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
