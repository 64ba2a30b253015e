"""A live momin serve for the SDK's tests: the real binary (MOMIN_BIN, else the repository's
release build), on a socket in a temp directory, with its own registry, stopped afterwards."""

import os
import pathlib
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def momin_binary() -> str:
    path = os.environ.get("MOMIN_BIN") or str(ROOT / ".build" / "release" / "momin")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no momin binary at {path}: build it (swift build -c release --product momin) or set MOMIN_BIN")
    return path


@pytest.fixture(scope="session")
def server():
    with tempfile.TemporaryDirectory(prefix="momin-sdk-") as directory:
        socket_path = os.path.join(directory, "api.sock")
        policies = os.path.join(directory, "policies")
        os.mkdir(policies)
        environment = dict(os.environ, MOMIN_RUNTIME_DIR=os.path.join(directory, "vms"), XDG_RUNTIME_DIR=directory)
        process = subprocess.Popen([momin_binary(), "serve", "--socket", socket_path, "--policies", policies],
                                   env=environment, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(socket_path):
                if process.poll() is not None:
                    raise RuntimeError(f"momin serve exited {process.returncode}: {process.stderr.read()}")
                if time.monotonic() > deadline:
                    raise RuntimeError("momin serve did not listen within 20 s")
                time.sleep(0.05)
            yield {"socket": socket_path, "policies": policies, "process": process}
        finally:
            process.terminate()
            process.wait(timeout=20)
