"""The SDK against a live momin serve on this host (no VM: the calls that need one run in the
rig). Each asserts what the server answered, typed as the SDK promises."""

import asyncio
import hashlib
import os
import stat

import pytest

import mominai
from mominai import BadRequest, Forbidden, MominError, NotFound, PolicyDenied, Sandbox, Unauthorized
from mominai._transport import Client
from mominai.aio import AsyncSandbox
from mominai.errors import from_problem


def test_list_is_empty_on_a_fresh_host(server):
    assert Sandbox.list(socket_path=server["socket"]) == []


def test_the_socket_is_its_owners_only(server):
    mode = os.stat(server["socket"]).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


def test_bad_machine_is_a_bad_request_with_the_cli_message(server):
    with pytest.raises(BadRequest) as caught:
        Sandbox.create(vcpus=0, socket_path=server["socket"])
    assert caught.value.status == 400
    assert caught.value.detail == "--vcpus 0 is out of range: at least 1 vCPU is needed"


def test_a_policy_name_must_be_in_the_servers_directory(server):
    with pytest.raises(BadRequest) as caught:
        Sandbox.create(policy="strict", socket_path=server["socket"])
    assert caught.value.detail == f"policy strict: no strict.yaml, .yml or .json in {server['policies']}"


def test_unknown_sandboxes_are_not_found(server):
    with pytest.raises(NotFound) as caught:
        Sandbox.connect("nope", socket_path=server["socket"])
    assert caught.value.detail == "no sandbox named nope"
    sandbox = Sandbox("nope", Client(server["socket"]))
    with pytest.raises(NotFound):
        sandbox.commands.run("true")
    with pytest.raises(NotFound):
        sandbox.files.read("/etc/hostname")
    with pytest.raises(NotFound):
        sandbox.kill()
    assert sandbox.is_running() is False


def test_no_server_is_a_clear_error(tmp_path):
    with pytest.raises(MominError) as caught:
        Sandbox.list(socket_path=str(tmp_path / "absent.sock"))
    assert str(caught.value).startswith(f"no momin serve at {tmp_path / 'absent.sock'}")


def test_the_openapi_document_is_served(server):
    document = Client(server["socket"]).json("GET", "/openapi.json")
    assert document["openapi"] == "3.1.0"
    assert "/v1/sandboxes/{name}/commands" in document["paths"]


def test_asyncio_calls_reach_the_same_server(server):
    async def main():
        return await AsyncSandbox.list(socket_path=server["socket"])
    assert asyncio.run(main()) == []


def test_a_denial_carries_the_rule_and_reason():
    problem = {"type": "https://mominai.dev/problems/denied", "title": "denied by policy", "status": 403,
               "detail": "cat: denied by policy (files.read, line 4): /etc/shadow is not readable",
               "rule": "files.read", "reason": "/etc/shadow is not readable"}
    error = from_problem(403, problem)
    assert isinstance(error, PolicyDenied)
    assert (error.rule, error.reason) == ("files.read", "/etc/shadow is not readable")
    assert isinstance(from_problem(403, {"detail": "not the owner"}), mominai.Forbidden)


def test_commands_are_sent_as_the_api_names_them(server, monkeypatch):
    sent = {}

    def lines(self, method, path, payload):
        sent.update(method=method, path=path, payload=payload)
        yield {"type": "stdout", "data": "aGk="}
        yield {"type": "exit", "exit_code": 3}

    monkeypatch.setattr(Client, "lines", lines)
    heard = []
    result = Sandbox("box", Client(server["socket"])).commands.run("echo hi", cwd="/tmp", envs={"A": "1"}, stdin="x",
                                                                   timeout=5, on_stdout=heard.append)
    assert sent == {"method": "POST", "path": "/v1/sandboxes/box/commands",
                    "payload": {"argv": ["/bin/sh", "-c", "echo hi"], "cwd": "/tmp", "env": ["A=1"], "stdin": "eA==",
                                "timeout_seconds": 5}}
    assert (result.stdout, result.exit_code, result.ok, heard) == ("hi", 3, False, ["hi"])


def test_files_list_and_get_info_ask_the_api_as_it_names_them(server, monkeypatch):
    asked = []

    def answer(self, method, path, payload=None):
        asked.append((method, path))
        if "/files/list" in path:
            return {"path": "/tmp/", "entries": [{"name": "a b", "type": "file"}, {"name": "d", "type": "directory"}]}
        return {"path": "/tmp/a b", "type": "file", "size": 3, "mode": 0o644, "modified_seconds": 1.5, "uid": 0, "gid": 0}

    monkeypatch.setattr(Client, "json", answer)
    files = Sandbox("box", Client(server["socket"])).files
    assert [(entry.name, entry.type, entry.path) for entry in files.list("/tmp/")] == [
        ("a b", "file", "/tmp/a b"), ("d", "directory", "/tmp/d")]
    info = files.get_info("/tmp/a b", follow_symlinks=True)
    assert (info.size, info.mode, info.modified_time) == (3, 0o644, 1.5)
    assert asked == [("GET", "/v1/sandboxes/box/files/list?path=%2Ftmp%2F"),
                     ("GET", "/v1/sandboxes/box/files/stat?path=%2Ftmp%2Fa+b&follow=true")]


def test_a_background_command_is_a_handle_on_the_api(server, monkeypatch):
    asked = []
    states = iter(["running", "done"])

    def answer(self, method, path, payload=None):
        asked.append((method, path, payload))
        if method == "POST":
            return {"id": "cmd-1", "argv": payload["argv"], "state": "running", "kill_requested": False}
        return {"id": "cmd-1", "argv": ["sleep"], "state": "done" if method == "DELETE" else next(states), "kill_requested": method == "DELETE",
                "exit_code": 0, "stdout": "aGkK", "stderr": ""}

    monkeypatch.setattr(Client, "json", answer)
    sandbox = Sandbox("box", Client(server["socket"]))
    handle = sandbox.commands.run("sleep 1; echo hi", background=True)
    assert (handle.id, handle.state) == ("cmd-1", "running")
    result = handle.wait(poll=0)
    assert (result.exit_code, result.stdout) == (0, "hi\n")
    sandbox.commands.kill("cmd-1")
    assert asked == [("POST", "/v1/sandboxes/box/commands", {"argv": ["/bin/sh", "-c", "sleep 1; echo hi"], "background": True}),
                     ("GET", "/v1/sandboxes/box/commands/cmd-1", None), ("GET", "/v1/sandboxes/box/commands/cmd-1", None),
                     ("DELETE", "/v1/sandboxes/box/commands/cmd-1", None)]
    with pytest.raises(ValueError, match="on_stdout and on_stderr are for a command run to its end"):
        sandbox.commands.run("true", background=True, on_stdout=print)


def test_tcp_needs_a_token_the_server_knows(server):
    with pytest.raises(Unauthorized) as caught:
        Sandbox.list(url=server["url"], token="momin_not-a-token")
    assert caught.value.status == 401
    assert "Authorization: Bearer" in caught.value.detail


def test_tcp_with_the_token_reaches_the_same_server(server):
    assert Sandbox.list(url=server["url"], token=server["token"]) == []
    with pytest.raises(BadRequest) as caught:
        Sandbox.create(vcpus=0, url=server["url"], token=server["token"])
    assert caught.value.detail == "--vcpus 0 is out of range: at least 1 vCPU is needed"


def test_a_tcp_caller_never_names_host_paths(server):
    with pytest.raises(Forbidden) as caught:
        Sandbox.create(kernel="/boot/vmlinuz", url=server["url"], token=server["token"])
    assert caught.value.detail.startswith("kernel: only this server's owner may name host paths")


def test_the_environment_names_the_tcp_server(server, monkeypatch):
    monkeypatch.setenv("MOMIN_API_URL", server["url"])
    monkeypatch.setenv("MOMIN_API_TOKEN", server["token"])
    assert Client().url == server["url"]
    assert Sandbox.list() == []
    monkeypatch.delenv("MOMIN_API_TOKEN")
    with pytest.raises(ValueError, match="a token is needed over TCP"):
        Sandbox.list()


def test_the_token_file_keeps_only_the_tokens_digest(server):
    with open(server["tokens"]) as file:
        text = file.read()
    assert text == f"sdk sha256:{hashlib.sha256(server['token'].encode()).hexdigest()}\n"
    assert stat.S_IMODE(os.stat(server["tokens"]).st_mode) == 0o600
