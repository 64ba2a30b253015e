"""The MCP tools on a real sandbox, through the real PyPI `mcp` client over Streamable HTTP at
momin serve's /mcp (with the token, through the rig's forwarded port): create a sandbox, run a
command, write and read a file back, list a directory, be denied with the rule named, kill it."""

import asyncio
import json
import os

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


def text(result) -> str:
    return "".join(part.text for part in result.content if part.type == "text")


async def session_calls(client):
    url = os.environ["MOMIN_API_URL"] + "/mcp"
    headers = {"Authorization": f"Bearer {os.environ['MOMIN_API_TOKEN']}"}
    async with httpx.AsyncClient(headers=headers, timeout=300) as http:
        async with streamable_http_client(url, http_client=http) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                assert "sandbox_create" in [tool.name for tool in (await session.list_tools()).tools]

                created = await session.call_tool("sandbox_create", {"policy": "sdk", "memory_mib": 256, "idle_timeout_seconds": 600})
                assert not created.isError, text(created)
                name = created.structuredContent["name"]
                assert created.structuredContent["state"] == "running"
                try:
                    ran = await session.call_tool("run_command", {"sandbox": name, "command": "echo hello from $GREETING; exit 4",
                                                                  "env": ["GREETING=mcp"]})
                    assert not ran.isError, text(ran)
                    assert (ran.structuredContent["exit_code"], ran.structuredContent["stdout"]) == (4, "hello from mcp\n")
                    assert text(ran).startswith("exit 4")

                    wrote = await session.call_tool("fs_write", {"sandbox": name, "path": "/tmp/mcp/note.txt", "content": "written by MCP\n"})
                    assert wrote.isError, "the directory does not exist yet: the guest refuses"
                    await session.call_tool("run_command", {"sandbox": name, "argv": ["/bin/sh", "-c", "mkdir -p /tmp/mcp"]})
                    wrote = await session.call_tool("fs_write", {"sandbox": name, "path": "/tmp/mcp/note.txt", "content": "written by MCP\n"})
                    assert not wrote.isError and wrote.structuredContent["bytes"] == 15, text(wrote)
                    back = await session.call_tool("fs_read", {"sandbox": name, "path": "/tmp/mcp/note.txt"})
                    assert (back.structuredContent["content"], back.structuredContent["encoding"]) == ("written by MCP\n", "utf-8")
                    binary = await session.call_tool("fs_write", {"sandbox": name, "path": "/tmp/mcp/blob", "content": "AP8A/w==",
                                                                  "encoding": "base64"})
                    assert not binary.isError, text(binary)
                    back = await session.call_tool("fs_read", {"sandbox": name, "path": "/tmp/mcp/blob"})
                    assert (back.structuredContent["encoding"], back.structuredContent["content"]) == ("base64", "AP8A/w==")
                    cut = await session.call_tool("fs_read", {"sandbox": name, "path": "/tmp/mcp/note.txt", "max_bytes": 5})
                    assert (cut.structuredContent["content"], cut.structuredContent["truncated"]) == ("writt", True)
                    await session.call_tool("run_command", {"sandbox": name, "command": "head -c 3000000 /dev/zero > /tmp/big"})
                    big = await session.call_tool("fs_read", {"sandbox": name, "path": "/tmp/big"})
                    assert (big.structuredContent["bytes"], big.structuredContent["truncated"]) == (1 << 20, True)
                    listed = await session.call_tool("fs_list", {"sandbox": name, "path": "/tmp/mcp"})
                    assert sorted(entry["name"] for entry in listed.structuredContent["entries"]) == ["blob", "note.txt"]

                    denied = await session.call_tool("run_command", {"sandbox": name, "argv": ["/bin/ls", "/"]})
                    assert denied.isError and denied.structuredContent["rule"] == "tools.exec", text(denied)
                    assert "rule: tools.exec" in text(denied)
                    denied = await session.call_tool("fs_read", {"sandbox": name, "path": "/etc/hostname"})
                    assert denied.isError and denied.structuredContent["rule"] == "tools.files.read", text(denied)

                    listed = await session.call_tool("sandbox_list", {})
                    assert name in [entry["name"] for entry in listed.structuredContent["sandboxes"]]
                finally:
                    killed = await session.call_tool("sandbox_kill", {"sandbox": name})
                assert not killed.isError, text(killed)
                listed = await session.call_tool("sandbox_list", {})
                assert name not in json.dumps(listed.structuredContent)


def test_an_mcp_client_drives_a_sandbox_end_to_end(client):
    asyncio.run(session_calls(client))
