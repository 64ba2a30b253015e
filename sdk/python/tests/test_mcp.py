"""MominAI's MCP server through the real PyPI `mcp` client, with no VM: `momin mcp` on stdio,
and /mcp under a live momin serve over TCP with a token. The tools on real sandboxes are in
tests_vm/test_mcp.py."""

import asyncio
import os
import subprocess
import tempfile

import httpx
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from conftest import momin_binary

TOOLS = ["sandbox_create", "run_command", "fs_read", "fs_write", "fs_list", "sandbox_kill", "sandbox_list"]


def text(result) -> str:
    return "".join(part.text for part in result.content if part.type == "text")


async def exercise(session: ClientSession) -> None:
    """What every transport must do without a VM: initialize, list the tools with their
    schemas, answer a call, and turn a bad one into a tool error naming what was wrong."""
    initialized = await session.initialize()
    assert initialized.serverInfo.name == "momin"
    assert initialized.capabilities.tools is not None
    tools = (await session.list_tools()).tools
    assert [tool.name for tool in tools] == TOOLS
    schemas = {tool.name: tool.inputSchema for tool in tools}
    assert schemas["run_command"]["required"] == ["sandbox"]
    assert schemas["fs_write"]["properties"]["encoding"]["enum"] == ["utf-8", "base64"]
    assert all(schema["additionalProperties"] is False for schema in schemas.values())
    listed = await session.call_tool("sandbox_list", {})
    assert not listed.isError and text(listed) == "no sandboxes"
    missing = await session.call_tool("fs_read", {"sandbox": "absent", "path": "/etc/hostname"})
    assert missing.isError and "no sandbox named absent" in text(missing)
    bad = await session.call_tool("run_command", {"sandbox": "absent", "command": "true", "shell": True})
    assert bad.isError and "shell: not an argument" in text(bad)


def test_momin_mcp_on_stdio():
    with tempfile.TemporaryDirectory(prefix="momin-mcp-") as directory:
        environment = dict(os.environ, MOMIN_RUNTIME_DIR=os.path.join(directory, "vms"), XDG_RUNTIME_DIR=directory)
        parameters = StdioServerParameters(command=momin_binary(), args=["mcp"], env=environment)

        async def run():
            async with stdio_client(parameters) as (read, write):
                async with ClientSession(read, write) as session:
                    await exercise(session)

        asyncio.run(run())


def test_momin_mcp_help_boots_nothing():
    done = subprocess.run([momin_binary(), "mcp", "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "standard input and output" in done.stdout


def test_mcp_under_momin_serve_over_tcp_with_a_token(server):
    async def run():
        headers = {"Authorization": f"Bearer {server['token']}"}
        async with httpx.AsyncClient(headers=headers, timeout=30) as http:
            async with streamable_http_client(server["url"] + "/mcp", http_client=http) as (read, write, _):
                async with ClientSession(read, write) as session:
                    await exercise(session)

    asyncio.run(run())


def test_mcp_over_tcp_needs_the_token_and_a_loopback_host(server):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"Accept": "application/json, text/event-stream"}
    assert httpx.post(server["url"] + "/mcp", json=body, headers=accept).status_code == 401
    authorized = dict(accept, Authorization=f"Bearer {server['token']}")
    assert httpx.post(server["url"] + "/mcp", json=body, headers=authorized).status_code == 200
    # A name that resolves to this host from a page elsewhere (DNS rebinding), or such a page's Origin.
    assert httpx.post(server["url"] + "/mcp", json=body, headers=dict(authorized, Host="evil.example")).status_code == 421
    assert httpx.post(server["url"] + "/mcp", json=body, headers=dict(authorized, Origin="http://evil.example")).status_code == 403
