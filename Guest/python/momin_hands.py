"""momin_hands: hands calls from Python, inside a MominAI microVM.

An agent in its VM reaches the host only through hands calls: buckets (shared, verifiable
stores), doors (messages to other agents) and sub-agents (microVMs of their own). Each call
goes to momin-init's Unix socket (``$MOMIN_HANDS_SOCKET``, else ``$HANDS_SOCKET``, else
``/run/momin/hands.sock``), one call per connection, one request frame and one reply frame
(the wire format of ``Sources/Doors/HandsCalls.swift``, docs/hands.md). The host judges each
call against the agent's policy, logs it, and answers. Standard library only.

    import momin_hands as hands

    hands.bucket_put("cases/1/evidence", "auth.log", open("auth.log", "rb").read())
    for entry in hands.bucket_query("cases/1/evidence"):
        print(entry.key, entry.size, entry.sha256)
    data = hands.bucket_get("cases/1/evidence", "auth.log")

    child = hands.spawn("auth", policy=pathlib.Path("analyst.yaml"), argv=["/bin/sh", "-c", "..."])
    result = hands.wait(child)                # WaitResult: exit_code or signal, stdout, stderr
    message = hands.door_receive("findings")  # Message: sender, data, sequence
    hands.door_send("findings", "triage", b"auth.log done")
    name, parent = hands.whoami()

    try:
        hands.bucket_get("secrets", "key")
    except hands.Denied as refusal:
        print(refusal.message)                # names the policy rule that said no

    hands.install_pip(["pefile==2024.8.26"])  # the host resolves, judges and logs; pip installs
    hands.install_apt(["binwalk"])            # the host judges and logs; apt-get installs via the proxy

A refused call raises a ``HandsError`` subclass (``Denied``, ``NotFound``, ``Invalid``,
``TimedOut``, ``NoRoom``, ``Failed``) carrying the host's ``code``, its ``message`` and the
``exit_status`` the ``hands`` command exits with. A call this module can tell the host would
refuse as malformed (a bad name, a value over 1 MiB) raises ``Invalid`` before anything is sent.

The Brain (the agent's model) is not a hands call: it is an OpenAI-compatible HTTP server at
``brain_url()`` (http://brain.momin/v1), reached with any OpenAI client or with urllib.

From a shell: ``python3 -m momin_hands whoami`` (``--help`` lists the verbs: ``hands``'s, but spawn).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
from typing import Iterable, Mapping, NamedTuple, Sequence, Union

__all__ = [
    "PROTOCOL_VERSION", "Hands", "HandsError", "Denied", "NotFound", "Invalid", "TimedOut", "NoRoom",
    "Failed", "Unreachable", "PipFailed", "AptFailed", "BucketEntry", "QueryResult", "Message", "WaitResult", "Request",
    "InstallFile", "Manifest", "Installed", "bucket_put", "bucket_get", "bucket_query", "door_send", "door_receive",
    "spawn", "wait", "stop", "whoami", "install_pip", "install_apt", "brain_url", "default_socket_path",
]

__version__ = "1.1"

# HandsCallProtocol (Sources/Doors/HandsCalls.swift); testdata/frames.json holds the values the
# Swift build has, and both test suites check them.
PROTOCOL_VERSION = 1
MAGIC = 0x484D
HEADER_SIZE = 8
MAX_DATA = 1 << 20
MAX_PAYLOAD = MAX_DATA + (1 << 18)
# DoorsLimits (Sources/Doors/DoorsProtocol.swift).
MAX_ARGUMENTS = 4096
MAX_ENVIRONMENT = 4096
MAX_ARGUMENT_LENGTH = 131_072
MAX_MESSAGE_LENGTH = 4096
MAX_FIELDS = 2 * MAX_ARGUMENTS + 16
MAX_NAME_LENGTH = 255
MAX_DISKS = 8
UINT32_MAX = 0xFFFF_FFFF
UINT64_MAX = 0xFFFF_FFFF_FFFF_FFFF
# HandsInstall and InstallManifest (Sources/Doors/InstallManifest.swift).
MAX_ECOSYSTEM_LENGTH = 16
MAX_REQUIREMENTS = 64
MAX_REQUIREMENT_LENGTH = 1024
MAX_INSTALL_ID_LENGTH = 64
MAX_INSTALL_FILES = 1024
MAX_INSTALL_FILE_SIZE = 1 << 40
MAX_WHEEL_NAME_LENGTH = 255

# HandsCallKind.
KIND_BUCKET_PUT = 0x01
KIND_BUCKET_GET = 0x02
KIND_BUCKET_QUERY = 0x03
KIND_DOOR_SEND = 0x10
KIND_DOOR_RECEIVE = 0x11
KIND_SPAWN = 0x20
KIND_WAIT = 0x21
KIND_STOP = 0x22
KIND_WHOAMI = 0x23
KIND_INSTALL = 0x30
KIND_INSTALL_FILE = 0x31
KIND_OK = 0x80
KIND_FAILED = 0x81

# The `hands` command's defaults (Guest/Sources/HandsClient/HandsArguments.swift).
DEFAULT_DOOR_TIMEOUT = 30.0
DEFAULT_VCPUS = 1
DEFAULT_MEMORY_MIB = 256
ROOT_DISK = "momin-root"

DEFAULT_SOCKET_PATH = "/run/momin/hands.sock"
#: momin-init's egress proxy (EgressProtocol.proxyListenPort), for apt when $http_proxy is not set.
APT_PROXY = "http://127.0.0.1:3128"
BRAIN_URL = "http://brain.momin/v1"

#: Seconds to wait for the reply of a call that does not block by design (a spawn boots a VM).
DEFAULT_REPLY_TIMEOUT = 120.0
#: Seconds added to a blocking call's own timeout before this side stops waiting for its reply.
TIMEOUT_MARGIN = 15.0

PolicySource = Union[str, bytes, bytearray, "os.PathLike[str]"]
Data = Union[bytes, bytearray, memoryview, str]


# MARK: - Errors


class HandsError(Exception):
    """A call that did not succeed: the host's failure ``code`` (HandsFailure), its
    ``message``, and the ``exit_status`` the ``hands`` command exits with for it."""

    code: int = 6
    exit_status: int = 70

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Denied(HandsError):
    """The caller's policy, the peer's, or a limit said no; the message names the rule."""

    code = 1
    exit_status = 77


class NotFound(HandsError):
    """No such key, agent or sub-agent."""

    code = 2
    exit_status = 2


class Invalid(HandsError):
    """The call was malformed: refused here before sending, or by momin-init or the host."""

    code = 3
    exit_status = 64


class TimedOut(HandsError):
    """Nothing arrived, or no room came free, in the time given (or no reply came in time)."""

    code = 4
    exit_status = 124


class NoRoom(HandsError):
    """The host has no room for the sub-agent."""

    code = 5
    exit_status = 75


class Failed(HandsError):
    """The host failed (a VM that did not boot, a log that did not write)."""

    code = 6
    exit_status = 70


class Unreachable(Failed):
    """momin-init cannot be reached, broke the exchange, or sent a reply that is not one."""


class PipFailed(Failed):
    """pip ran on the fetched files and did not succeed: ``exit_status`` is its exit status
    (128 + the signal that ended it), as ``hands install pip`` exits."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status


class AptFailed(Failed):
    """apt-get update or install ran and did not succeed: ``exit_status`` is its exit status
    (128 + the signal that ended it), as ``hands install apt`` exits."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status


_FAILURES: dict[int, type[HandsError]] = {cls.code: cls for cls in (Denied, NotFound, Invalid, TimedOut, NoRoom, Failed)}


def failure(code: int, message: str) -> HandsError:
    """The exception for a ``failed(code, message)`` reply; a code this module does not know
    is ``Failed``, as the Swift decoder reads it."""
    return _FAILURES.get(code, Failed)(message)


# MARK: - Results


@dataclasses.dataclass(frozen=True)
class BucketEntry:
    """The newest version of one key: its size in bytes and the SHA-256 of its value (hex)."""

    key: str
    size: int
    sha256: str


class QueryResult(list):  # type: ignore[type-arg]
    """A list of ``BucketEntry``; ``truncated`` is the host's note when not every key fit in one
    reply (narrow the prefix), else None."""

    truncated: str | None = None


@dataclasses.dataclass(frozen=True)
class Message:
    """A door message: who sent it, its bytes, and its sequence number (one counter per tree)."""

    sender: str
    data: bytes
    sequence: int


@dataclasses.dataclass(frozen=True)
class WaitResult:
    """How a sub-agent's command ended: ``exit_code`` when it exited, ``signal`` when a signal
    ended it; the last 64 KiB of its stdout, and its stderr when the host sent it."""

    exit_code: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes

    @property
    def exit_status(self) -> int:
        """As a shell reports a child: the exit code, or 128 + the signal."""
        return self.exit_code if self.exit_code is not None else 128 + (self.signal or 0)


@dataclasses.dataclass(frozen=True)
class InstallFile:
    """One file of an install, as the host logged it: the project (PEP 503 name), its version,
    the wheel's file name, its size in bytes and its SHA-256 (hex)."""

    name: str
    version: str
    filename: str
    size: int
    sha256: str

    @property
    def requirement(self) -> str:
        """Its line in pip's requirements file, in hash-checking mode."""
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


@dataclasses.dataclass(frozen=True)
class Manifest:
    """An install's reply: its id (for ``install_file``) and its files, in install order."""

    install: str
    files: tuple[InstallFile, ...]


class Installed(NamedTuple):
    """A file ``install_pip`` installed."""

    name: str
    version: str
    filename: str
    sha256: str


# MARK: - Frames


@dataclasses.dataclass(frozen=True)
class Request:
    """One call: its kind, its fields in the order the host reads them, and how long the host
    may take by design (seconds; None: as long as it takes)."""

    verb: str
    kind: int
    fields: tuple[bytes, ...]
    blocks_for: float | None = 0.0

    def encode(self) -> bytes:
        """The frame: header (magic, version, kind, payload length), then the field count and
        each field as a length and its bytes, all little-endian (HandsCallCodec.encode)."""
        if len(self.fields) > MAX_FIELDS:
            raise Invalid(f"{self.verb}: {len(self.fields)} fields, at most {MAX_FIELDS} in a hands frame")
        parts = [struct.pack("<H", len(self.fields))]
        for field in self.fields:
            parts.append(struct.pack("<I", len(field)))
            parts.append(field)
        payload = b"".join(parts)
        if len(payload) > MAX_PAYLOAD:
            raise Invalid(f"{self.verb}: the call's payload is {len(payload)} bytes, over the {MAX_PAYLOAD}-byte limit of a hands frame")
        return struct.pack("<HBBI", MAGIC, PROTOCOL_VERSION, self.kind, len(payload)) + payload


def parse_header(header: bytes) -> tuple[int, int]:
    """The kind and payload length a reply header announces, checked as
    HandsCallCodec.payloadLength checks it; raises Unreachable."""
    if len(header) < HEADER_SIZE:
        raise Unreachable(f"momin-init sent a bad reply: a {len(header)}-byte header")
    magic, version, kind, length = struct.unpack("<HBBI", header[:HEADER_SIZE])
    if magic != MAGIC:
        raise Unreachable(f"momin-init sent a bad reply: bad magic 0x{magic:x}, expected 0x{MAGIC:x}")
    if version != PROTOCOL_VERSION:
        raise Unreachable(f"momin-init sent a bad reply: hands call version {version} is not spoken here (only {PROTOCOL_VERSION})")
    if kind not in (KIND_OK, KIND_FAILED):
        raise Unreachable(f"momin-init sent a bad reply: kind 0x{kind:x} is not a reply")
    if length > MAX_PAYLOAD:
        raise Unreachable(f"momin-init sent a bad reply: a {length}-byte payload is over the {MAX_PAYLOAD}-byte limit")
    return kind, length


def split_fields(payload: bytes) -> list[bytes]:
    """The fields of a payload; raises Unreachable when it is cut short or has bytes left over."""
    if len(payload) < 2:
        raise Unreachable("momin-init sent a bad reply: the frame ends inside a field")
    (count,) = struct.unpack_from("<H", payload, 0)
    if count > MAX_FIELDS:
        raise Unreachable(f"momin-init sent a bad reply: {count} fields, at most {MAX_FIELDS}")
    fields = []
    index = 2
    for _ in range(count):
        if len(payload) - index < 4:
            raise Unreachable("momin-init sent a bad reply: the frame ends inside a field")
        (length,) = struct.unpack_from("<I", payload, index)
        index += 4
        if len(payload) - index < length:
            raise Unreachable("momin-init sent a bad reply: the frame ends inside a field")
        fields.append(payload[index:index + length])
        index += length
    if index != len(payload):
        raise Unreachable(f"momin-init sent a bad reply: {len(payload) - index} bytes follow the last field")
    return fields


def decode_reply(kind: int, payload: bytes) -> tuple[list[str], bytes]:
    """An ``ok`` reply's text fields and data (HandsCallCodec.decodeReply); a ``failed`` reply
    is raised as its HandsError."""
    fields = split_fields(payload)
    if kind == KIND_OK:
        if not fields:
            raise Unreachable("momin-init sent a bad reply: ok with no data field")
        texts = [_reply_text(field, index, MAX_PAYLOAD) for index, field in enumerate(fields[:-1])]
        if len(fields[-1]) > MAX_DATA:
            raise Unreachable(f"momin-init sent a bad reply: {len(fields[-1])} bytes of data, at most {MAX_DATA}")
        return texts, bytes(fields[-1])
    if kind == KIND_FAILED:
        if len(fields) != 2 or len(fields[0]) != 4:
            raise Unreachable(f"momin-init sent a bad reply: a failure of {len(fields)} fields")
        (code,) = struct.unpack("<I", fields[0])
        raise failure(code, _reply_text(fields[1], 1, MAX_MESSAGE_LENGTH))
    raise Unreachable(f"momin-init sent a bad reply: kind 0x{kind:x} is not a reply")


def _reply_text(field: bytes, index: int, limit: int) -> str:
    if len(field) > limit:
        raise Unreachable(f"momin-init sent a bad reply: field {index + 1} is {len(field)} bytes, at most {limit}")
    try:
        return field.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreachable(f"momin-init sent a bad reply: field {index + 1} is not UTF-8") from None


# MARK: - Checks, as the relay's decoder makes them


def _name(verb: str, what: str, value: object, allow_empty: bool = False, limit: int = MAX_NAME_LENGTH) -> bytes:
    """A name: 1 to ``limit`` (255) bytes of UTF-8 (none where allowed), no control characters."""
    if not isinstance(value, str):
        raise Invalid(f"{verb}: {what} must be a str, not {type(value).__name__}")
    encoded = _utf8(verb, what, value)
    if not encoded and not allow_empty:
        raise Invalid(f"{verb}: {what} is empty")
    if len(encoded) > limit:
        raise Invalid(f"{verb}: {what} is {len(encoded)} bytes, at most {limit}")
    if any(byte < 0x20 or byte == 0x7F for byte in encoded):
        raise Invalid(f"{verb}: {what} holds a control character")
    return encoded


def _utf8(verb: str, what: str, value: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(f"{verb}: {what} is not valid Unicode (a lone surrogate)") from None


def _data(verb: str, what: str, value: object) -> bytes:
    """A value, message or policy: bytes (a str is sent as UTF-8), at most 1 MiB."""
    if isinstance(value, str):
        encoded = _utf8(verb, what, value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        encoded = bytes(value)
    else:
        raise Invalid(f"{verb}: {what} must be bytes or str, not {type(value).__name__}")
    if len(encoded) > MAX_DATA:
        raise Invalid(f"{verb}: {what} is {len(encoded)} bytes, over the {MAX_DATA}-byte limit")
    return encoded


def _text(verb: str, what: str, value: object) -> bytes:
    """An argv or environment entry: UTF-8, at most 128 KiB."""
    if not isinstance(value, str):
        raise Invalid(f"{verb}: {what} must be a str, not {type(value).__name__}")
    encoded = _utf8(verb, what, value)
    if len(encoded) > MAX_ARGUMENT_LENGTH:
        raise Invalid(f"{verb}: {what} is {len(encoded)} bytes, at most {MAX_ARGUMENT_LENGTH}")
    return encoded


def _decimal(text: str) -> int | None:
    """An optionally signed run of ASCII digits as an int, else None (as Swift's Int32(text))."""
    digits = text[1:] if text.startswith("-") else text
    return int(text) if digits and digits.isascii() and digits.isdigit() else None


def _u32(value: int) -> bytes:
    return struct.pack("<I", value)


def _count(verb: str, what: str, value: object) -> int:
    """A whole number from 1 to 2**32 - 1."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= UINT32_MAX:
        raise Invalid(f"{verb}: {what} must be a whole number from 1 to {UINT32_MAX}, not {value!r}")
    return value


def milliseconds(verb: str, seconds: object) -> int:
    """Seconds (0 or more, decimals allowed) as the protocol's milliseconds, rounded and clamped
    to what a UInt32 holds, as the ``hands`` command sends ``--timeout``."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        raise Invalid(f"{verb}: timeout must be a number of seconds (0 or more), not {seconds!r}")
    rounded = round(seconds * 1000)
    return UINT32_MAX if rounded >= UINT32_MAX else int(rounded)


# MARK: - Requests, one per verb


def request_bucket_put(namespace: str, key: str, value: Data) -> Request:
    verb = "bucket_put"
    return Request(verb, KIND_BUCKET_PUT, (_name(verb, "namespace", namespace), _name(verb, "key", key), _data(verb, "value", value)))


def request_bucket_get(namespace: str, key: str) -> Request:
    verb = "bucket_get"
    return Request(verb, KIND_BUCKET_GET, (_name(verb, "namespace", namespace), _name(verb, "key", key)))


def request_bucket_query(namespace: str, prefix: str = "") -> Request:
    verb = "bucket_query"
    return Request(verb, KIND_BUCKET_QUERY, (_name(verb, "namespace", namespace), _name(verb, "prefix", prefix, allow_empty=True)))


def request_door_send(door: str, to: str, message: Data, timeout: float = DEFAULT_DOOR_TIMEOUT) -> Request:
    verb = "door_send"
    ms = milliseconds(verb, timeout)
    fields = (_name(verb, "door", door), _name(verb, "to", to), _data(verb, "message", message), _u32(ms))
    return Request(verb, KIND_DOOR_SEND, fields, blocks_for=ms / 1000)


def request_door_receive(door: str, timeout: float = DEFAULT_DOOR_TIMEOUT) -> Request:
    verb = "door_receive"
    ms = milliseconds(verb, timeout)
    return Request(verb, KIND_DOOR_RECEIVE, (_name(verb, "door", door), _u32(ms)), blocks_for=ms / 1000)


def request_spawn(name: str, policy: PolicySource, argv: Sequence[str], env: Mapping[str, str] | Iterable[str] | None = None,
                  vcpus: int = DEFAULT_VCPUS, memory_mib: int = DEFAULT_MEMORY_MIB, disks: Iterable[str] = (),
                  image: bool = False, policy_format: str | None = None) -> Request:
    verb = "spawn"
    policy_bytes, guessed = _policy(policy)
    policy_format = guessed if policy_format is None else policy_format
    if policy_format not in ("yaml", "json"):
        raise Invalid(f"spawn: policy_format must be \"yaml\" or \"json\", not {policy_format!r}")
    if isinstance(argv, (str, bytes)):
        raise Invalid("spawn: argv must be a list of str (the command and its arguments), not one string")
    argv = list(argv)
    if not 1 <= len(argv) <= MAX_ARGUMENTS:
        raise Invalid(f"spawn: argv must have 1 to {MAX_ARGUMENTS} entries, not {len(argv)}")
    entries = _environment(env)
    disk_names = [_name(verb, "disk", disk) for disk in ([disks] if isinstance(disks, str) else disks)]
    if image:
        disk_names.append(ROOT_DISK.encode())
    if len(disk_names) > MAX_DISKS:
        raise Invalid(f"spawn: at most {MAX_DISKS} disks, not {len(disk_names)}")
    fields = (
        _name(verb, "name", name), _data(verb, "policy", policy_bytes), policy_format.encode(),
        _u32(_count(verb, "vcpus", vcpus)), _u32(_count(verb, "memory_mib", memory_mib)), _u32(len(disk_names)),
        *disk_names, _u32(len(argv)), *(_text(verb, f"argv[{i}]", arg) for i, arg in enumerate(argv)), *entries,
    )
    return Request(verb, KIND_SPAWN, fields, blocks_for=0.0)


def _policy(policy: PolicySource) -> tuple[bytes, str]:
    """The policy's bytes and the format to send when none is given: a path (os.PathLike) is
    read, JSON when its name ends in .json, else YAML (as ``hands spawn --policy FILE``); bytes
    and str are the policy itself, JSON when it starts with "{", else YAML."""
    if isinstance(policy, os.PathLike):
        path = os.fspath(policy)
        try:
            with open(path, "rb") as file:
                content = file.read(MAX_DATA + 1)
        except OSError as error:
            raise Invalid(f"spawn: cannot read the policy {path}: {error.strerror}") from None
        if len(content) > MAX_DATA:
            raise Invalid(f"spawn: policy {path} is over the {MAX_DATA}-byte limit")
        return content, "json" if str(path).endswith(".json") else "yaml"
    if isinstance(policy, str):
        content = _utf8("spawn", "policy", policy)
    elif isinstance(policy, (bytes, bytearray, memoryview)):
        content = bytes(policy)
    else:
        raise Invalid(f"spawn: policy must be bytes, str or a path, not {type(policy).__name__}")
    return content, "json" if content.lstrip().startswith(b"{") else "yaml"


def _environment(env: Mapping[str, str] | Iterable[str] | None) -> list[bytes]:
    """NAME=VALUE entries, from a mapping or as they are; NAME not empty."""
    if env is None:
        return []
    if isinstance(env, str):
        raise Invalid("spawn: env must be a mapping or a list of NAME=VALUE, not one string")
    if isinstance(env, Mapping):
        items = [f"{name}={value}" for name, value in env.items()]
    else:
        items = list(env)
    if len(items) > MAX_ENVIRONMENT:
        raise Invalid(f"spawn: at most {MAX_ENVIRONMENT} environment entries, not {len(items)}")
    entries = []
    for index, item in enumerate(items):
        encoded = _text("spawn", f"env[{index}]", item)
        if encoded.find(b"=") < 1:
            raise Invalid(f"spawn: env needs NAME=VALUE, not {item!r}")
        entries.append(encoded)
    return entries


def request_wait(agent: str, timeout: float | None = None) -> Request:
    verb = "wait"
    ms = 0 if timeout is None else milliseconds(verb, timeout)
    # 0 is "as long as the child runs": no deadline on this side either.
    return Request(verb, KIND_WAIT, (_name(verb, "agent", agent), _u32(ms)), blocks_for=None if ms == 0 else ms / 1000)


def request_stop(agent: str) -> Request:
    return Request("stop", KIND_STOP, (_name("stop", "agent", agent),))


def request_whoami() -> Request:
    return Request("whoami", KIND_WHOAMI, ())


def request_install(ecosystem: str, requirements: Iterable[str] | str) -> Request:
    """An install: no deadline on this side, as the host resolves, fetches and logs every file
    before it answers."""
    verb = "install"
    fields = [_name(verb, "ecosystem", ecosystem, limit=MAX_ECOSYSTEM_LENGTH)]
    items = [requirements] if isinstance(requirements, str) else list(requirements)
    if not 1 <= len(items) <= MAX_REQUIREMENTS:
        raise Invalid(f"{verb}: requirements must have 1 to {MAX_REQUIREMENTS} entries, not {len(items)}")
    for index, requirement in enumerate(items):
        fields.append(_requirement(verb, f"requirements[{index}]", requirement))
    return Request(verb, KIND_INSTALL, tuple(fields), blocks_for=None)


def _requirement(verb: str, what: str, value: object) -> bytes:
    """A plausible PEP 508 requirement, as ``hands install`` checks one: it starts with a
    letter or digit (no pip option, no path), at most 1024 bytes, no control characters."""
    if not isinstance(value, str):
        raise Invalid(f"{verb}: {what} must be a str, not {type(value).__name__}")
    encoded = _utf8(verb, what, value)
    if not encoded:
        raise Invalid(f"{verb}: {what} is empty")
    if len(encoded) > MAX_REQUIREMENT_LENGTH:
        raise Invalid(f"{verb}: {what} is {len(encoded)} bytes, at most {MAX_REQUIREMENT_LENGTH}")
    if any(byte < 0x20 or byte == 0x7F for byte in encoded):
        raise Invalid(f"{verb}: {what} holds a control character")
    if not (value[0].isascii() and value[0].isalnum()):
        raise Invalid(f"{verb}: {what} {value!r} does not start with a project name (PEP 508)")
    return encoded


_DEBIAN_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")


def _run_program(argv: list[str], environment: dict[str, str] | None, failure: type, what: str) -> None:
    """Runs ``argv`` with this process's standard streams; ``failure`` (with the exit status, or
    128 + the signal) unless it exits 0, ``Failed`` when it cannot be started."""
    try:
        status = subprocess.run(argv, env=environment, check=False).returncode
    except OSError as error:
        raise Failed(f"cannot start {argv[0]}: {error.strerror or error}") from None
    if status < 0:
        raise failure(f"{what} was ended by signal {-status}", 128 - status)
    if status != 0:
        raise failure(f"{what} exited with status {status}", status)


def _debian_names(verb: str, names: Iterable[str] | str) -> list[str]:
    """Debian package names (Debian Policy §5.6.1), as ``hands install apt`` checks them: lower
    case letters, digits, ``+ - .``, at least two, starting with a letter or digit."""
    items = [names] if isinstance(names, str) else list(names)
    for index, name in enumerate(items):
        if not isinstance(name, str):
            raise Invalid(f"{verb}: names[{index}] must be a str, not {type(name).__name__}")
        if len(name) > MAX_REQUIREMENT_LENGTH:
            raise Invalid(f"{verb}: names[{index}] is {len(name)} bytes, at most {MAX_REQUIREMENT_LENGTH}")
        if not _DEBIAN_NAME.fullmatch(name):
            raise Invalid(f"{verb}: names[{index}] {name!r} is not a Debian package name "
                          "(lower case letters, digits, + - ., at least 2, starting with a letter or digit)")
    return items


def request_install_file(install: str, file: int, offset: int) -> Request:
    verb = "install_file"
    if not isinstance(install, str) or not _INSTALL_ID.fullmatch(install):
        raise Invalid(f"{verb}: install must be an install id (1 to {MAX_INSTALL_ID_LENGTH} letters, digits or -), not {install!r}")
    for what, value, most in (("file", file, UINT32_MAX), ("offset", offset, UINT64_MAX)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
            raise Invalid(f"{verb}: {what} must be a whole number from 0 to {most}, not {value!r}")
    return Request(verb, KIND_INSTALL_FILE, (install.encode(), _u32(file), struct.pack("<Q", offset)))


# MARK: - Install manifests, checked as InstallManifest(fields:) checks them

_INSTALL_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.!+_-]*")
_SIZE = re.compile(r"0|[1-9][0-9]{0,12}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _quoted(text: str) -> str:
    """A value in a message: quoted, control characters as \\xHH, at most 64 characters shown."""
    shown = "".join(f"\\x{ord(c):02x}" if ord(c) < 0x20 or ord(c) == 0x7F else c for c in text[:64])
    return f'"{shown}{"..." if len(text) > 64 else ""}"'


def parse_manifest(fields: Sequence[str]) -> Manifest:
    """The manifest in an install reply's fields (the install id, then NAME, VERSION, FILENAME,
    SIZE and SHA256, tab-separated, one line per file), every line checked; raises Unreachable
    naming the line (counted from 1 at the first file) and what is wrong with it."""
    def bad(why: str) -> Unreachable:
        return Unreachable(f"the host's install manifest is not understood: {why}")
    if not fields:
        raise bad("no install id")
    install = fields[0]
    if not _INSTALL_ID.fullmatch(install):
        raise bad(f"install id {_quoted(install)} is not 1 to {MAX_INSTALL_ID_LENGTH} letters, digits or -")
    lines = fields[1:]
    if not lines:
        raise bad("no files")
    if len(lines) > MAX_INSTALL_FILES:
        raise bad(f"{len(lines)} files, at most {MAX_INSTALL_FILES}")
    files: list[InstallFile] = []
    filenames: dict[str, int] = {}
    names: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        parts = line.split("\t")
        if len(parts) != 5:
            raise bad(f"line {number}: {len(parts)} fields, not 5 (NAME, VERSION, FILENAME, SIZE, SHA256)")
        name, version, filename, size, sha256 = parts
        if len(name) > 255 or not _NAME.fullmatch(name):
            raise bad(f"line {number}: NAME {_quoted(name)} is not a normalised project name")
        if len(version) > 255 or not _VERSION.fullmatch(version):
            raise bad(f"line {number}: VERSION {_quoted(version)} is not a version")
        if (not filename.endswith(".whl") or filename in (".", "..") or "/" in filename
                or len(filename.encode()) > MAX_WHEEL_NAME_LENGTH
                or any(ord(c) < 0x20 or ord(c) == 0x7F for c in filename)):
            raise bad(f"line {number}: FILENAME {_quoted(filename)} is not a plain .whl file name of at most {MAX_WHEEL_NAME_LENGTH} bytes")
        if not _SIZE.fullmatch(size) or int(size) > MAX_INSTALL_FILE_SIZE:
            raise bad(f"line {number}: SIZE {_quoted(size)} is not a whole number of bytes up to {MAX_INSTALL_FILE_SIZE}")
        if not _SHA256.fullmatch(sha256):
            raise bad(f"line {number}: SHA256 {_quoted(sha256)} is not 64 lowercase hex digits")
        if filename in filenames:
            raise bad(f"line {number}: FILENAME {_quoted(filename)} is on line {filenames[filename]} too")
        if name in names:
            raise bad(f"line {number}: NAME {_quoted(name)} is on line {names[name]} too")
        filenames[filename] = names[name] = number
        files.append(InstallFile(name, version, filename, int(size), sha256))
    return Manifest(install, tuple(files))


# MARK: - The client


def default_socket_path() -> str:
    """``$MOMIN_HANDS_SOCKET``, else ``$HANDS_SOCKET`` (the ``hands`` command's), when set and not
    empty; else momin-init's ``/run/momin/hands.sock``."""
    for variable in ("MOMIN_HANDS_SOCKET", "HANDS_SOCKET"):
        value = os.environ.get(variable)
        if value:
            return value
    return DEFAULT_SOCKET_PATH


def brain_url() -> str:
    """The Brain's base URL: an OpenAI-compatible server (``/chat/completions``, ...) that the
    host serves to this VM; any OpenAI client, or urllib, talks to it. No API key is needed in
    the VM: the host holds it."""
    return BRAIN_URL


class Hands:
    """A client for momin-init's hands socket. ``socket_path`` None reads the environment at
    each call (``default_socket_path``). ``reply_timeout`` is how long to wait for the reply of a
    call that does not block by design (None: no limit); a door send, door receive or wait with a
    timeout waits that long plus ``margin``; a wait without one waits as long as the child runs."""

    def __init__(self, socket_path: str | None = None, reply_timeout: float | None = DEFAULT_REPLY_TIMEOUT,
                 margin: float = TIMEOUT_MARGIN) -> None:
        self.socket_path = socket_path
        self.reply_timeout = reply_timeout
        self.margin = margin

    # Verbs.

    def bucket_put(self, namespace: str, key: str, value: Data) -> None:
        """Stores ``value`` (at most 1 MiB; a str is stored as UTF-8) as the newest version of ``key``."""
        self.call(request_bucket_put(namespace, key, value))

    def bucket_get(self, namespace: str, key: str) -> bytes:
        """The newest value of ``key``; NotFound when there is none."""
        return self.call(request_bucket_get(namespace, key))[1]

    def bucket_query(self, namespace: str, prefix: str = "") -> QueryResult:
        """The newest version of each key starting with ``prefix`` ("" for all)."""
        fields, marker = self.call(request_bucket_query(namespace, prefix))
        result = QueryResult()
        for line in fields:
            parts = line.split("\t")
            size = _decimal(parts[1]) if len(parts) == 3 else None
            if size is None or size < 0:
                raise Unreachable(f"the host's reply to bucket_query is not understood (line {line[:64]!r})")
            result.append(BucketEntry(parts[0], size, parts[2]))
        result.truncated = marker.decode("utf-8", "replace") if marker else None
        return result

    def door_send(self, door: str, to: str, message: Data, timeout: float = DEFAULT_DOOR_TIMEOUT) -> int:
        """Sends ``message`` to agent ``to`` on ``door``, waiting up to ``timeout`` seconds for room
        in its queue; the message's sequence number."""
        fields, _ = self.call(request_door_send(door, to, message, timeout))
        return self._number("door_send", fields, 0)

    def door_receive(self, door: str, timeout: float = DEFAULT_DOOR_TIMEOUT) -> Message:
        """The oldest message on ``door``, waiting up to ``timeout`` seconds; TimedOut when none came."""
        fields, data = self.call(request_door_receive(door, timeout))
        if not fields:
            raise Unreachable("the host's reply to door_receive is not understood (no sender)")
        sequence = self._number("door_receive", fields, 1) if len(fields) > 1 else 0
        return Message(fields[0], data, sequence)

    def spawn(self, name: str, policy: PolicySource, argv: Sequence[str], env: Mapping[str, str] | Iterable[str] | None = None,
              vcpus: int = DEFAULT_VCPUS, memory_mib: int = DEFAULT_MEMORY_MIB, disks: Iterable[str] = (),
              image: bool = False, policy_format: str | None = None) -> str:
        """Starts sub-agent ``name`` in a microVM of its own under ``policy`` (a path, or the
        policy's bytes or text), running ``argv``; ``disks`` are this VM's named disks it gets
        read-only, ``image`` boots it on this VM's root image. Its full name (``parent.name``)."""
        fields, _ = self.call(request_spawn(name, policy, argv, env, vcpus, memory_mib, disks, image, policy_format))
        if not fields:
            raise Unreachable("the host's reply to spawn is not understood (no name)")
        return fields[0]

    def wait(self, agent: str, timeout: float | None = None) -> WaitResult:
        """Waits for sub-agent ``agent``'s command to end (None: as long as it runs); how it ended."""
        fields, data = self.call(request_wait(agent, timeout))
        number = _decimal(fields[1]) if len(fields) in (2, 3) else None
        stderr = fields[2].encode("utf-8") if len(fields) == 3 else b""
        if number is not None and fields[0] == "exited" and 0 <= number <= 255:
            return WaitResult(number, None, data, stderr)
        if number is not None and fields[0] == "signaled" and 1 <= number <= 127:
            return WaitResult(None, number, data, stderr)
        shown = ", ".join(repr(field[:64]) for field in fields[:4])
        raise Unreachable(f"the host's reply to wait is not understood (fields: [{shown}])")

    def stop(self, agent: str) -> None:
        """Stops sub-agent ``agent`` and everything it started."""
        self.call(request_stop(agent))

    def whoami(self) -> tuple[str, str | None]:
        """This agent's name and its parent's (None for a root agent)."""
        fields, _ = self.call(request_whoami())
        if not fields:
            raise Unreachable("the host's reply to whoami is not understood (no name)")
        return fields[0], (fields[1] or None) if len(fields) > 1 else None

    def install(self, ecosystem: str, requirements: Iterable[str] | str) -> Manifest:
        """Asks the host to install ``requirements`` (PEP 508 strings): it resolves them and
        their dependencies from its policy's index, judges each package, fetches and logs each
        file, and keeps the files; the install's manifest, each file then fetched with
        ``install_file``. ``install_pip`` does all of it."""
        fields, _ = self.call(request_install(ecosystem, requirements))
        return parse_manifest(fields)

    def install_file(self, install: str, file: int, offset: int) -> bytes:
        """Up to 1 MiB of file number ``file`` of install ``install`` from ``offset``; b"" at or
        past its end."""
        return self.call(request_install_file(install, file, offset))[1]

    def install_pip(self, requirements: Iterable[str] | str, python: str | None = None) -> list[Installed]:
        """Installs Python packages as ``hands install pip`` does: the host resolves, judges,
        fetches and logs them; their files come here piece by piece into a private temporary
        directory, each checked against the SHA-256 the host logged, and ``python`` (default:
        this interpreter) runs ``pip install`` on them offline in hash-checking mode. The
        files installed; ``Denied`` (naming the package) and the other failures as raised,
        ``PipFailed`` when pip did not succeed. The directory is removed in every case."""
        manifest = self.install("pip", requirements)
        python = python or sys.executable
        with tempfile.TemporaryDirectory(prefix="hands-install.") as directory:
            for index, file in enumerate(manifest.files):
                self._fetch(manifest.install, index, file, os.path.join(directory, file.filename))
            requirements_file = os.path.join(directory, "requirements.txt")
            with open(requirements_file, "x", encoding="utf-8") as out:
                out.write("".join(file.requirement + "\n" for file in manifest.files))
            command = [python, "-m", "pip", "install", "--no-index", "--find-links", directory, "--require-hashes", "--no-cache-dir",
                       "--disable-pip-version-check", "--break-system-packages", "--root-user-action=ignore", "-r", requirements_file]
            _run_program(command, None, PipFailed, "pip")
        return [Installed(file.name, file.version, file.filename, file.sha256) for file in manifest.files]

    def install_apt(self, names: Iterable[str] | str) -> None:
        """Installs Debian packages as ``hands install apt`` does: the host judges and logs each
        name and answers with the policy's mirrors (each said on stderr), then this VM's own
        apt-get runs ``update`` and ``install -y --no-install-recommends NAMES`` through the
        egress proxy ($http_proxy, else momin-init's), which lets apt reach only those mirrors
        and judges and logs each .deb; apt's own signature checks stay on. ``Denied`` (naming
        the package) and the other failures as raised, ``AptFailed`` when apt-get did not
        succeed, ``Failed`` when it cannot be started."""
        items = _debian_names("install_apt", names)
        fields, _ = self.call(request_install("apt", items))
        for mirror in fields:
            print(f"momin_hands: apt may reach {mirror}", file=sys.stderr)
        proxy = os.environ.get("http_proxy") or APT_PROXY
        options = ["-o", f"Acquire::http::Proxy={proxy}", "-o", "Acquire::http::Pipeline-Depth=0", "-o", "Acquire::Retries=0"]
        # apt goes direct to what no_proxy names, even with a proxy set, and momin-init's names 127.0.0.1.
        environment = {name: value for name, value in os.environ.items() if name not in ("no_proxy", "NO_PROXY")}
        environment["DEBIAN_FRONTEND"] = "noninteractive"
        for what, arguments in (("update", ["update"]), ("install", ["install", "-y", "--no-install-recommends", *items])):
            _run_program(["apt-get", *options, *arguments], environment, AptFailed, f"apt-get {what}")

    def _fetch(self, install: str, index: int, file: InstallFile, path: str) -> None:
        """File ``index`` into ``path``, piece by piece, checked against its size and SHA-256."""
        digest = hashlib.sha256()
        offset = 0
        with open(path, "xb") as out:
            while offset < file.size:
                try:
                    piece = self.install_file(install, index, offset)
                except HandsError as error:
                    raise type(error)(f"fetching {file.filename}: {error.message}") from None
                if not piece:
                    raise Unreachable(f"the host sent {file.filename} short: {offset} of its {file.size} bytes")
                if len(piece) > file.size - offset:
                    raise Unreachable(f"the host sent more of {file.filename} than its {file.size} bytes ({len(piece)} at offset {offset})")
                out.write(piece)
                digest.update(piece)
                offset += len(piece)
        if digest.hexdigest() != file.sha256:
            raise Failed(f"{file.filename} arrived with SHA-256 {digest.hexdigest()}, not the {file.sha256} the host logged")

    # The exchange.

    def call(self, request: Request) -> tuple[list[str], bytes]:
        """Sends ``request`` and reads its one reply: the ``ok`` reply's text fields and data, or
        the failure raised."""
        frame = request.encode()
        path = self.socket_path or default_socket_path()
        if request.blocks_for is None:
            limit = None
        elif request.blocks_for > 0:
            limit = request.blocks_for + self.margin
        else:
            limit = self.reply_timeout
        deadline = None if limit is None else time.monotonic() + limit
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            try:
                connection.settimeout(_remaining(deadline, request.verb))
                connection.connect(path)
            except TimeoutError:
                raise TimedOut(f"{request.verb}: momin-init at {path} did not take the call in time") from None
            except OSError as error:
                raise Unreachable(f"cannot reach momin-init at {path}: {error.strerror or error}") from None
            # A send cut short (momin-init answers some calls without reading them all: a
            # refusal, a bad header) still leaves its reply to read.
            send_error: OSError | None = None
            try:
                connection.settimeout(_remaining(deadline, request.verb))
                connection.sendall(frame)
            except TimeoutError:
                raise TimedOut(f"{request.verb}: momin-init did not take the call in time") from None
            except OSError as error:
                send_error = error
            header = _receive(connection, HEADER_SIZE, "header", deadline, request.verb, send_error, limit)
            kind, length = parse_header(header)
            payload = _receive(connection, length, "payload", deadline, request.verb, None, limit)
        return decode_reply(kind, payload)

    @staticmethod
    def _number(verb: str, fields: list[str], index: int) -> int:
        number = _decimal(fields[index]) if len(fields) > index else None
        if number is None or number < 0:
            raise Unreachable(f"the host's reply to {verb} is not understood (fields: {fields[:4]!r})")
        return number


def _remaining(deadline: float | None, verb: str) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimedOut(f"{verb}: no reply from momin-init in time")
    return left


def _receive(connection: socket.socket, count: int, what: str, deadline: float | None, verb: str,
             send_error: OSError | None, limit: float | None) -> bytes:
    """Exactly ``count`` bytes before ``deadline``, or the reason they did not come."""
    chunks: list[bytes] = []
    filled = 0
    while filled < count:
        try:
            connection.settimeout(_remaining(deadline, verb))
            chunk = connection.recv(min(count - filled, 1 << 16))
            error: OSError | None = None
        except TimeoutError:
            raise TimedOut(f"{verb}: no reply from momin-init within {limit:g} s") from None
        except OSError as problem:
            chunk, error = b"", problem
        if chunk:
            chunks.append(chunk)
            filled += len(chunk)
            continue
        reason = "" if error is None else f": {error.strerror or error}"
        if filled == 0 and what == "header":
            if send_error is not None:
                raise Unreachable(f"momin-init closed the connection while the call was sent: {send_error.strerror or send_error}")
            raise Unreachable("momin-init closed the connection without a reply" + reason)
        raise Unreachable(f"momin-init's reply ends after {filled} of its {count} {what} bytes" + reason)
    return b"".join(chunks)


# MARK: - Module-level calls on a default client

default = Hands()


def bucket_put(namespace: str, key: str, value: Data) -> None:
    default.bucket_put(namespace, key, value)


def bucket_get(namespace: str, key: str) -> bytes:
    return default.bucket_get(namespace, key)


def bucket_query(namespace: str, prefix: str = "") -> QueryResult:
    return default.bucket_query(namespace, prefix)


def door_send(door: str, to: str, message: Data, timeout: float = DEFAULT_DOOR_TIMEOUT) -> int:
    return default.door_send(door, to, message, timeout)


def door_receive(door: str, timeout: float = DEFAULT_DOOR_TIMEOUT) -> Message:
    return default.door_receive(door, timeout)


def spawn(name: str, policy: PolicySource, argv: Sequence[str], env: Mapping[str, str] | Iterable[str] | None = None,
          vcpus: int = DEFAULT_VCPUS, memory_mib: int = DEFAULT_MEMORY_MIB, disks: Iterable[str] = (),
          image: bool = False, policy_format: str | None = None) -> str:
    return default.spawn(name, policy, argv, env, vcpus, memory_mib, disks, image, policy_format)


def wait(agent: str, timeout: float | None = None) -> WaitResult:
    return default.wait(agent, timeout)


def stop(agent: str) -> None:
    default.stop(agent)


def whoami() -> tuple[str, str | None]:
    return default.whoami()


def install_pip(requirements: Iterable[str] | str, python: str | None = None) -> list[Installed]:
    return default.install_pip(requirements, python)


def install_apt(names: Iterable[str] | str) -> None:
    default.install_apt(names)


# MARK: - Command line


def _command_line() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m momin_hands", description="One hands call, as the hands command makes it.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("version", help="this module's version and the hands protocol's")
    verbs.add_parser("whoami", help="this agent's name, and its parent's")
    bucket = verbs.add_parser("bucket").add_subparsers(dest="sub", required=True)
    put = bucket.add_parser("put")
    put.add_argument("namespace")
    put.add_argument("key")
    put.add_argument("value", nargs="?", help="the value (standard input when left out or -)")
    get = bucket.add_parser("get")
    get.add_argument("namespace")
    get.add_argument("key")
    query = bucket.add_parser("query")
    query.add_argument("namespace")
    query.add_argument("prefix", nargs="?", default="")
    door = verbs.add_parser("door").add_subparsers(dest="sub", required=True)
    send = door.add_parser("send")
    send.add_argument("door")
    send.add_argument("to")
    send.add_argument("message", nargs="?", help="the message (standard input when left out or -)")
    send.add_argument("--timeout", type=float, default=DEFAULT_DOOR_TIMEOUT)
    receive = door.add_parser("recv")
    receive.add_argument("door")
    receive.add_argument("--timeout", type=float, default=DEFAULT_DOOR_TIMEOUT)
    receive.add_argument("--from", dest="show_sender", action="store_true")
    wait_ = verbs.add_parser("wait")
    wait_.add_argument("agent")
    wait_.add_argument("--timeout", type=float, default=None)
    stop_ = verbs.add_parser("stop")
    stop_.add_argument("agent")
    install = verbs.add_parser("install", help="packages the host judges and logs, installed by pip or apt-get")
    install.add_argument("ecosystem", choices=["pip", "apt"])
    install.add_argument("requirements", nargs="+", metavar="REQUIREMENT", help="PEP 508 requirements, or Debian package names")
    install.add_argument("--python", default=None, help="pip: the Python whose pip installs (default: this one)")
    return parser


def _argument_or_stdin(word: str | None) -> bytes:
    return word.encode() if word not in (None, "-") else sys.stdin.buffer.read(MAX_DATA + 1)


def main(arguments: Sequence[str] | None = None) -> int:
    """``python3 -m momin_hands VERB ...`` (the ``hands`` command's verbs but spawn): one call,
    its output on stdout; a failure is ``momin_hands: MESSAGE`` on stderr and the ``hands``
    command's exit status."""
    options = _command_line().parse_args(arguments)
    verb = options.verb + (" " + options.sub if hasattr(options, "sub") else "")
    out = sys.stdout.buffer
    try:
        if verb == "version":
            out.write(f"momin_hands {__version__}, hands protocol {PROTOCOL_VERSION}\n".encode())
        elif verb == "whoami":
            name, parent = whoami()
            out.write(f"{name}\n".encode() + (f"parent {parent}\n".encode() if parent else b""))
        elif verb == "bucket put":
            bucket_put(options.namespace, options.key, _argument_or_stdin(options.value))
        elif verb == "bucket get":
            out.write(bucket_get(options.namespace, options.key))
        elif verb == "bucket query":
            entries = bucket_query(options.namespace, options.prefix)
            out.write("".join(f"{e.key}\t{e.size}\t{e.sha256}\n" for e in entries).encode())
            if entries.truncated:
                print(f"momin_hands: {entries.truncated}", file=sys.stderr)
        elif verb == "door send":
            door_send(options.door, options.to, _argument_or_stdin(options.message), options.timeout)
        elif verb == "door recv":
            received = door_receive(options.door, options.timeout)
            out.write((received.sender.encode() + b"\n" if options.show_sender else b"") + received.data)
        elif verb == "wait":
            result = wait(options.agent, options.timeout)
            out.write(result.stdout)
            out.flush()
            sys.stderr.buffer.write(result.stderr)
            return result.exit_status
        elif verb == "stop":
            stop(options.agent)
        elif verb == "install" and options.ecosystem == "apt":
            if options.python is not None:
                raise Invalid("install apt has no option --python")
            install_apt(options.requirements)
        elif verb == "install":
            for file in install_pip(options.requirements, options.python):
                print(f"momin_hands: installed {file.name} {file.version} {file.filename} sha256:{file.sha256}", file=sys.stderr)
    except HandsError as error:
        out.flush()
        print(f"momin_hands: {error.message}", file=sys.stderr)
        return error.exit_status
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
