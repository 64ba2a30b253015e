"""LangChain deepagents on a real sandbox: MominBackend as deepagents' sandbox backend, first
through its protocol, then under deepagents' own agent loop with a scripted model (no
network). The sandbox runs the Debian image, which has the python3 that deepagents' file tools
run in the guest."""

import pytest
from deepagents import create_deep_agent
from langchain_core.messages import AIMessage, ToolMessage

from mominai import Sandbox
from mominai.deepagents import MominBackend
from scripted import ScriptedChatModel


@pytest.fixture(scope="module")
def backend(client):
    sandbox = Sandbox.create(image="debian", policy="sdk-debian", memory_mib=512, idle_timeout=600)
    yield MominBackend(sandbox)
    sandbox.kill()


def test_the_backend_runs_commands_and_moves_files_through_the_policy(backend):
    ran = backend.execute("echo out; echo err >&2; exit 3")
    assert (ran.exit_code, ran.output, ran.truncated) == (3, "out\nerr\n", False)
    assert backend.id == backend._sandbox.name
    uploaded = backend.upload_files([("/tmp/da/new/a.txt", b"first"), ("/etc/motd", b"no")])
    assert [answer.error for answer in uploaded] == [None, "permission_denied"]
    downloaded = backend.download_files(["/tmp/da/new/a.txt", "/tmp/da/none", "/etc/hostname"])
    assert [(answer.content, answer.error) for answer in downloaded] == [
        (b"first", None), (None, "file_not_found"), (None, "permission_denied")]


def test_a_deep_agent_works_in_the_sandbox(backend):
    def call(name, arguments, id):
        return AIMessage(content="", tool_calls=[{"name": name, "args": arguments, "id": id}])

    model = ScriptedChatModel(script=[
        call("execute", {"command": "uname -s; mkdir -p /tmp/da/work && echo $((6 * 7)) > /tmp/da/work/answer"}, "run"),
        call("write_file", {"file_path": "/tmp/da/work/plan.md", "content": "step one\nstep two\n"}, "write"),
        call("read_file", {"file_path": "/tmp/da/work/answer"}, "read"),
        call("ls", {"path": "/tmp/da/work"}, "list"),
        call("edit_file", {"file_path": "/tmp/da/work/plan.md", "old_string": "step two", "new_string": "step 2"}, "edit"),
        call("read_file", {"file_path": "/tmp/da/work/absent"}, "missing"),
        AIMessage(content="done"),
    ])
    result = create_deep_agent(model=model, backend=backend).invoke({"messages": [("user", "work in the sandbox")]})
    answers = {message.tool_call_id: message.content for message in result["messages"] if isinstance(message, ToolMessage)}
    assert "Linux" in answers["run"]
    assert "42" in answers["read"]
    assert "plan.md" in answers["list"] and "answer" in answers["list"]
    assert answers["missing"] == "Error: File '/tmp/da/work/absent': file_not_found"
    assert result["messages"][-1].content == "done"
    # What the agent did is in the sandbox, read back through the files API.
    assert backend._sandbox.files.read("/tmp/da/work/plan.md") == "step one\nstep 2\n"
