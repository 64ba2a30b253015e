"""The SDK against real sandboxes: a momin serve that can boot VMs, reached over TCP with a
token. Scripts/test runs these on the host against the server that Tests/rig/sdk-scenarios
starts in the rig's L2 (docs/rig.md, "Forwarded ports"); on a host with hardware
virtualization, any momin serve --tcp with a policy named "sdk" like that file's will do. There
is no skipping: without a server, every test fails and says why."""

import os

import pytest

from mominai._transport import Client


@pytest.fixture(scope="session")
def client() -> Client:
    if not os.environ.get("MOMIN_API_URL") or not os.environ.get("MOMIN_API_TOKEN"):
        raise RuntimeError("MOMIN_API_URL and MOMIN_API_TOKEN must name a momin serve --tcp that boots VMs "
                           "(Scripts/test sets them for the rig's; see docs/rig.md)")
    return Client()
