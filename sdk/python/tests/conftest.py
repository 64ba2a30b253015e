"""A live momin serve for the SDK's tests: the real binary (MOMIN_BIN, else the repository's
release build), on a socket in a temp directory and on loopback TCP with a token, with its own
registry, stopped afterwards."""

import os
import pathlib
import re
import subprocess
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def momin_binary() -> str:
    path = os.environ.get("MOMIN_BIN") or str(ROOT / ".build" / "release" / "momin")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no momin binary at {path}: build it (swift build -c release --product momin) or set MOMIN_BIN")
    return path


@pytest.fixture(scope="session")
def server():
    """momin serve on a socket, and on an ephemeral loopback TCP port with one token, "sdk"."""
    with tempfile.TemporaryDirectory(prefix="momin-sdk-") as directory:
        socket_path = os.path.join(directory, "api.sock")
        policies = os.path.join(directory, "policies")
        tokens = os.path.join(directory, "tokens")
        os.mkdir(policies)
        environment = dict(os.environ, MOMIN_RUNTIME_DIR=os.path.join(directory, "vms"), XDG_RUNTIME_DIR=directory)
        token = subprocess.run([momin_binary(), "serve", "--tokens", tokens, "--add-token", "sdk"], env=environment,
                               check=True, capture_output=True, text=True).stdout.strip()
        process = subprocess.Popen([momin_binary(), "serve", "--socket", socket_path, "--policies", policies,
                                    "--tcp", "127.0.0.1:0", "--tokens", tokens],
                                   env=environment, stderr=subprocess.PIPE, text=True)
        try:
            # The first line says where it listens; it comes once both listeners are up.
            line = process.stderr.readline()
            found = re.search(r"and tcp 127\.0\.0\.1:(\d+) \(1 tokens\)", line)
            if not found or not os.path.exists(socket_path):
                process.kill()
                raise RuntimeError(f"momin serve did not start: {line}{process.stderr.read()}")
            yield {"socket": socket_path, "policies": policies, "process": process, "tokens": tokens, "token": token,
                   "url": f"http://127.0.0.1:{found.group(1)}"}
        finally:
            process.terminate()
            process.wait(timeout=20)
