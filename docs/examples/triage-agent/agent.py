#!/usr/bin/env python3
"""A triage agent that thinks with a model: the standard tool-calling loop, inside a momin VM.

It asks the Brain (``http://brain.momin/v1``, an OpenAI-compatible endpoint the host serves to
this VM; the API key stays on the host) what to do, runs the tool calls the model returns, feeds
each result back, and stops at the model's final answer. Its tools:

- ``run``: one of the image's triage programs (file, sha256sum, strings, yara) on evidence;
- ``read_file``: the first 64 KiB of an evidence file;
- ``bucket_put``: a finding into a bucket, through ``momin_hands`` (the host judges and logs it;
  a refusal goes back to the model as the tool's result, naming the rule).

Standard library and ``momin_hands`` only. Every model call and bucket put leaves the VM as a
Hands call, judged by the agent's policy and written to the audit log.

    python3 agent.py --evidence DIR [--model NAME] [--max-turns N] [--task TEXT]
"""

import argparse
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import momin_hands

OUTPUT_KEPT = 64 << 10
PROGRAMS = {
    "file": "/usr/bin/file",
    "sha256sum": "/usr/bin/sha256sum",
    "strings": "/usr/bin/strings",
    "yara": "/usr/bin/yara",
}

SYSTEM = (
    "You are a cybersecurity triage agent. The evidence is a read-only directory of files taken "
    "from a seized disk. Use the tools to identify each file, hash it and match it against the "
    "YARA rules; store each finding with bucket_put (namespace cases/<case>/findings). When you "
    "are done, answer with a short summary of what you found."
)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "run",
            "description": "Run one triage program on evidence: file, sha256sum, strings or yara. "
                           "argv[0] is the program's name; the other arguments are passed as they are.",
            "parameters": {
                "type": "object",
                "properties": {"argv": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
                "required": ["argv"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read the first 64 KiB of a file under the evidence directory.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "bucket_put",
            "description": "Store a finding in a bucket (append-only, signed, kept by the host).",
            "parameters": {
                "type": "object",
                "properties": {
                    "namespace": {"type": "string"},
                    "key": {"type": "string"},
                    "content": {"type": "string"},
                },
                "required": ["namespace", "key", "content"],
            },
        },
    },
]


class BrainError(Exception):
    """The Brain answered with an error (the host's refusal, or the provider's)."""


def chat(base_url, model, messages):
    """One Chat Completions call; the assistant's message."""
    body = json.dumps({"model": model, "messages": messages, "tools": TOOLS}).encode()
    request = urllib.request.Request(
        base_url.rstrip("/") + "/chat/completions", data=body, method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"})
    # The Brain is reached directly, never through the egress proxy.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=600) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as error:
        raise BrainError(f"HTTP {error.code}: {error.read(4096).decode(errors='replace').strip()}") from None
    choices = answer.get("choices") or []
    if not choices:
        raise BrainError(f"no choices in the answer: {json.dumps(answer)[:500]}")
    return choices[0]["message"]


def inside(root, path):
    """The real path of ``path`` when it lies under ``root``, else None."""
    real = os.path.realpath(os.path.join(root, path))
    return real if real == root or real.startswith(root.rstrip("/") + "/") else None


def run_tool(name, arguments, evidence, hands):
    """One tool call's result, as text for the model; failures are results too."""
    if name == "run":
        argv = arguments.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            return "error: argv must be a non-empty list of strings"
        program = PROGRAMS.get(argv[0])
        if program is None:
            return f"error: {argv[0]!r} is not one of {', '.join(sorted(PROGRAMS))}"
        try:
            done = subprocess.run([program] + argv[1:], cwd=evidence, capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            return "error: timed out after 60 s"
        output = (done.stdout + done.stderr)[:OUTPUT_KEPT].decode(errors="replace")
        return f"exit {done.returncode}\n{output}"
    if name == "read_file":
        path = inside(evidence, str(arguments.get("path", "")))
        if path is None:
            return "error: the path is outside the evidence directory"
        try:
            with open(path, "rb") as file:
                return file.read(OUTPUT_KEPT).decode(errors="replace")
        except OSError as error:
            return f"error: {error.strerror}"
    if name == "bucket_put":
        try:
            hands.bucket_put(str(arguments.get("namespace", "")), str(arguments.get("key", "")),
                             str(arguments.get("content", "")).encode())
        except momin_hands.Denied as denied:
            return f"refused by policy: {denied}"
        except momin_hands.HandsError as error:
            return f"error: {error}"
        return "stored"
    return f"error: there is no tool {name!r}"


def main():
    parser = argparse.ArgumentParser(description="A triage agent on the Brain's tool-calling loop.")
    parser.add_argument("--evidence", required=True, help="the read-only evidence directory")
    parser.add_argument("--model", default=os.environ.get("TRIAGE_MODEL", "gpt-4o-mini"))
    parser.add_argument("--max-turns", type=int, default=20)
    parser.add_argument("--case", default="example")
    parser.add_argument("--task", default="Triage the evidence and store your findings.")
    options = parser.parse_args()
    evidence = os.path.realpath(options.evidence)
    base_url = momin_hands.brain_url()
    hands = momin_hands.Hands()
    listing = "\n".join(sorted(os.listdir(evidence)))
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Case: {options.case}\nEvidence directory: {evidence}\nFiles:\n{listing}\n\n{options.task}"},
    ]
    for turn in range(options.max_turns):
        try:
            message = chat(base_url, options.model, messages)
        except (BrainError, urllib.error.URLError, OSError) as error:
            print(f"brain: {error}", file=sys.stderr)
            return 1
        calls = message.get("tool_calls") or []
        messages.append({"role": "assistant", "content": message.get("content"), **({"tool_calls": calls} if calls else {})})
        if not calls:
            print(f"final: {message.get('content') or ''}")
            return 0
        for call in calls:
            function = call.get("function", {})
            try:
                arguments = json.loads(function.get("arguments") or "{}")
            except json.JSONDecodeError:
                arguments = None
            if not isinstance(arguments, dict):
                result = "error: the arguments are not a JSON object"
            else:
                result = run_tool(function.get("name", ""), arguments, evidence, hands)
            print(f"turn {turn + 1}: {function.get('name')} {function.get('arguments')} -> {result.splitlines()[0] if result else ''}")
            messages.append({"role": "tool", "tool_call_id": call.get("id", ""), "content": result})
    print(f"no final answer after {options.max_turns} turns", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
