"""Tests of momin_hands: frames byte for byte against the Swift codec's (testdata/frames.json,
which the Swift test PythonVectorsTests keeps equal to what HandsCallCodec encodes), replies and
failures from a fake momin-init on a temporary Unix socket, replies cut short or never sent,
the bounds checked before sending, install manifests judged as the Swift client judges them,
install_pip end to end with a stand-in for pip, and install_apt with a stand-in for apt-get.

    cd Guest/python && python3 -m unittest
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import socket
import struct
import sys
import tempfile
import threading
import time
import unittest
from typing import Any, Callable
from unittest import mock

import momin_hands as mh

VECTORS = json.loads((pathlib.Path(__file__).parent / "testdata" / "frames.json").read_text("utf-8"))
CLASSES = {"denied": mh.Denied, "notFound": mh.NotFound, "invalid": mh.Invalid, "timedOut": mh.TimedOut,
           "noRoom": mh.NoRoom, "failed": mh.Failed}


def arguments(raw: dict[str, Any]) -> dict[str, Any]:
    """A vector's keyword arguments, bytes given as {"hex": ...}."""
    return {key: bytes.fromhex(value["hex"]) if isinstance(value, dict) else value for key, value in raw.items()}


def reply_frame(name: str) -> bytes:
    return bytes.fromhex(next(r for r in VECTORS["replies"] if r["name"] == name)["frame"])


def ok_frame(fields: list[str], data: bytes = b"") -> bytes:
    """An ok reply built here, for replies the Swift host does not send."""
    return mh.Request("ok", mh.KIND_OK, (*[f.encode() for f in fields], data)).encode()


def read_frame(connection: socket.socket) -> bytes:
    def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = connection.recv(count - len(data))
            if not chunk:
                raise EOFError(f"{len(data)} of {count} bytes")
            data += chunk
        return data
    header = exactly(mh.HEADER_SIZE)
    (length,) = struct.unpack_from("<I", header, 4)
    return header + exactly(length)


class FakeInit:
    """momin-init's socket in a temporary directory: each connection is handed to `handler`,
    which reads and answers as it likes; the frames read with `answer` are kept."""

    def __init__(self, handler: Callable[[socket.socket, FakeInit], None]) -> None:
        self.directory = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.directory.name, "hands.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(8)
        self.handler = handler
        self.requests: list[bytes] = []
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @classmethod
    def answering(cls, reply: bytes) -> FakeInit:
        """Reads one whole call frame, then writes `reply` and closes."""
        def handler(connection: socket.socket, server: FakeInit) -> None:
            server.requests.append(read_frame(connection))
            connection.sendall(reply)
        return cls(handler)

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with connection:
                try:
                    self.handler(connection, self)
                except (OSError, EOFError):
                    pass

    def client(self, **options: Any) -> mh.Hands:
        return mh.Hands(socket_path=self.path, **options)

    def close(self) -> None:
        self.listener.close()
        self.directory.cleanup()


class FramesTests(unittest.TestCase):
    def test_constants_are_the_swift_codecs(self) -> None:
        protocol = VECTORS["protocol"]
        self.assertEqual(
            (mh.MAGIC, mh.PROTOCOL_VERSION, mh.HEADER_SIZE, mh.MAX_DATA, mh.MAX_PAYLOAD, mh.MAX_FIELDS, mh.MAX_NAME_LENGTH,
             mh.MAX_MESSAGE_LENGTH, mh.MAX_ARGUMENTS, mh.MAX_ARGUMENT_LENGTH, mh.MAX_ENVIRONMENT, mh.MAX_DISKS,
             mh.MAX_ECOSYSTEM_LENGTH, mh.MAX_REQUIREMENTS, mh.MAX_REQUIREMENT_LENGTH, mh.MAX_INSTALL_ID_LENGTH, mh.MAX_INSTALL_FILES,
             mh.MAX_INSTALL_FILE_SIZE, mh.MAX_WHEEL_NAME_LENGTH),
            (protocol["magic"], protocol["version"], protocol["headerSize"], protocol["maxData"], protocol["maxPayload"],
             protocol["maxFields"], protocol["maxNameLength"], protocol["maxMessageLength"], protocol["maxArguments"],
             protocol["maxArgumentLength"], protocol["maxEnvironment"], protocol["maxDisks"],
             protocol["maxEcosystemLength"], protocol["maxRequirements"], protocol["maxRequirementLength"],
             protocol["maxInstallIDLength"], protocol["maxInstallFiles"], protocol["maxInstallFileSize"], protocol["maxWheelNameLength"]))
        defaults = VECTORS["defaults"]
        self.assertEqual(mh.DEFAULT_DOOR_TIMEOUT * 1000, defaults["doorTimeoutMilliseconds"])
        self.assertEqual((mh.DEFAULT_VCPUS, mh.DEFAULT_MEMORY_MIB, mh.ROOT_DISK, mh.DEFAULT_SOCKET_PATH),
                         (defaults["vcpus"], defaults["memoryMiB"], defaults["rootDisk"], defaults["socketPath"]))
        kinds = {name: getattr(mh, "KIND_" + "".join("_" + c if c.isupper() else c.upper() for c in name))
                 for name in VECTORS["kinds"]}
        self.assertEqual(kinds, VECTORS["kinds"])
        for entry in VECTORS["failures"]:
            cls = CLASSES[entry["name"]]
            self.assertEqual((cls.code, cls.exit_status), (entry["code"], entry["exitStatus"]), entry["name"])
            self.assertIsInstance(mh.failure(entry["code"], "m"), cls)
        self.assertEqual(len(CLASSES), len(VECTORS["failures"]))

    def test_every_verbs_frame_is_the_swift_codecs(self) -> None:
        verbs = set()
        for vector in VECTORS["calls"]:
            with self.subTest(vector["verb"], arguments=vector["arguments"]):
                request = getattr(mh, "request_" + vector["verb"])(**arguments(vector["arguments"]))
                self.assertEqual(request.encode().hex(), vector["frame"])
            verbs.add(vector["verb"])
        self.assertEqual(verbs, {"bucket_put", "bucket_get", "bucket_query", "door_send", "door_receive", "spawn", "wait",
                                 "stop", "whoami", "install", "install_file"})

    def test_the_client_sends_exactly_those_frames(self) -> None:
        answers = {"bucket_get": "value", "bucket_query": "query", "door_send": "sequence", "door_receive": "message",
                   "spawn": "spawned", "wait": "exited", "whoami": "identity", "install": "manifest", "install_file": "piece"}
        for vector in VECTORS["calls"]:
            server = FakeInit.answering(reply_frame(answers.get(vector["verb"], "empty")))
            try:
                getattr(server.client(), vector["verb"])(**arguments(vector["arguments"]))
                self.assertEqual([r.hex() for r in server.requests], [vector["frame"]], vector["verb"])
            finally:
                server.close()

    def test_replies_decode_as_the_swift_codec_encoded_them(self) -> None:
        for vector in VECTORS["replies"]:
            with self.subTest(vector["name"]):
                frame = bytes.fromhex(vector["frame"])
                kind, length = mh.parse_header(frame[:mh.HEADER_SIZE])
                self.assertEqual(length, len(frame) - mh.HEADER_SIZE)
                if "failure" in vector:
                    with self.assertRaises(CLASSES[vector["failure"]]) as caught:
                        mh.decode_reply(kind, frame[mh.HEADER_SIZE:])
                    self.assertEqual(caught.exception.message, vector["message"])
                else:
                    self.assertEqual(mh.decode_reply(kind, frame[mh.HEADER_SIZE:]),
                                     (vector["fields"], bytes.fromhex(vector["data"]["hex"])))


class RepliesTests(unittest.TestCase):
    def call(self, reply: bytes, verb: str, *args: Any, **kwargs: Any) -> Any:
        server = FakeInit.answering(reply)
        try:
            return getattr(server.client(), verb)(*args, **kwargs)
        finally:
            server.close()

    def test_each_verb_reads_its_reply(self) -> None:
        sha = "ab" * 32
        self.assertIsNone(self.call(reply_frame("empty"), "bucket_put", "n", "k", "v"))
        self.assertEqual(self.call(reply_frame("value"), "bucket_get", "n", "k"), b"\x00\xffvalue")
        entries = self.call(reply_frame("query"), "bucket_query", "n")
        self.assertEqual(entries, [mh.BucketEntry("k1", 5, sha), mh.BucketEntry("clé", 0, sha)])
        self.assertIsNone(entries.truncated)
        cut = self.call(reply_frame("query-truncated"), "bucket_query", "n", "k")
        self.assertEqual((list(cut), cut.truncated), ([mh.BucketEntry("k1", 5, sha)], "truncated: 1 of 2 keys shown"))
        self.assertEqual(self.call(reply_frame("sequence"), "door_send", "d", "to", b"m"), 17)
        self.assertEqual(self.call(reply_frame("message"), "door_receive", "d"), mh.Message("triage.auth", b"auth.log done", 42))
        self.assertEqual(self.call(reply_frame("spawned"), "spawn", "auth", b"x: 1\n", ["true"]), "triage.auth")
        exited = self.call(reply_frame("exited"), "wait", "triage.auth")
        self.assertEqual(exited, mh.WaitResult(3, None, b"out\n", b"oops\n"))
        self.assertEqual(exited.exit_status, 3)
        signaled = self.call(reply_frame("signaled"), "wait", "triage.auth")
        self.assertEqual((signaled, signaled.exit_status), (mh.WaitResult(None, 9, b"", b""), 137))
        self.assertIsNone(self.call(reply_frame("empty"), "stop", "child"))
        self.assertEqual(self.call(reply_frame("identity"), "whoami"), ("triage.auth", "triage"))
        self.assertEqual(self.call(reply_frame("root-identity"), "whoami"), ("triage", None))
        self.assertEqual(self.call(reply_frame("manifest"), "install", "pip", ["pefile==2024.8.26"]),
                         mh.Manifest("3f2a-01", (mh.InstallFile("pefile", "2024.8.26", "pefile-2024.8.26-py3-none-any.whl", 74, sha),)))
        self.assertEqual(self.call(reply_frame("piece"), "install_file", "3f2a-01", 0, 0), b"PK\x03\x04\x00\xff")

    def test_failures_raise_their_class(self) -> None:
        for entry in VECTORS["failures"]:
            with self.subTest(entry["name"]):
                with self.assertRaises(CLASSES[entry["name"]]) as caught:
                    self.call(reply_frame(entry["name"]), "bucket_get", "n", "k")
                error = caught.exception
                self.assertIsInstance(error, mh.HandsError)
                self.assertEqual((error.code, error.exit_status, error.message, str(error)),
                                 (entry["code"], entry["exitStatus"], f"{entry['name']}: déjà vu", f"{entry['name']}: déjà vu"))

    def test_a_denial_carries_the_rule_and_an_unknown_code_is_failed(self) -> None:
        rule = "denied by policy (bucket-get): tools.buckets: namespace \"secrets\" is not allowed"
        denial = mh.Request("failed", mh.KIND_FAILED, (struct.pack("<I", 1), rule.encode())).encode()
        with self.assertRaises(mh.Denied) as caught:
            self.call(denial, "bucket_get", "secrets", "k")
        self.assertEqual((caught.exception.message, caught.exception.exit_status), (rule, 77))
        unknown = mh.Request("failed", mh.KIND_FAILED, (struct.pack("<I", 99), b"new")).encode()
        with self.assertRaises(mh.Failed) as other:
            self.call(unknown, "whoami")
        self.assertEqual((type(other.exception), other.exception.exit_status), (mh.Failed, 70))

    def test_replies_that_do_not_fit_their_call_are_refused(self) -> None:
        cases = [
            (ok_frame(["exited", "256"]), "wait", ("c",), "the host's reply to wait is not understood"),
            (ok_frame(["stopped", "1"]), "wait", ("c",), "the host's reply to wait is not understood"),
            (ok_frame([]), "whoami", (), "the host's reply to whoami is not understood (no name)"),
            (ok_frame(["k1\tbig\tsha"]), "bucket_query", ("n",), "the host's reply to bucket_query is not understood"),
            (ok_frame(["²"]), "door_send", ("d", "t", b""), "the host's reply to door_send is not understood"),
            (mh.Request("w", mh.KIND_WHOAMI, ()).encode(), "whoami", (), "kind 0x23 is not a reply"),
            (b"GET / HTTP/1.1\r\n", "whoami", (), "bad magic 0x4547"),
        ]
        for reply, verb, args, message in cases:
            with self.subTest(verb, message=message):
                with self.assertRaises(mh.Unreachable) as caught:
                    self.call(reply, verb, *args)
                self.assertIn(message, caught.exception.message)
                self.assertEqual(caught.exception.exit_status, 70)


class ExchangeTests(unittest.TestCase):
    def test_a_reply_cut_short(self) -> None:
        frame = reply_frame("value")

        def cut(connection: socket.socket, server: FakeInit) -> None:
            read_frame(connection)
            connection.sendall(frame[:-3])
        server = FakeInit(cut)
        try:
            with self.assertRaises(mh.Unreachable) as caught:
                server.client().bucket_get("n", "k")
            payload = len(frame) - mh.HEADER_SIZE
            self.assertEqual(caught.exception.message, f"momin-init's reply ends after {payload - 3} of its {payload} payload bytes")
        finally:
            server.close()

    def test_no_reply_at_all(self) -> None:
        server = FakeInit(lambda connection, server: read_frame(connection) and None)
        try:
            with self.assertRaises(mh.Unreachable) as caught:
                server.client().whoami()
            self.assertEqual(caught.exception.message, "momin-init closed the connection without a reply")
        finally:
            server.close()

    def test_no_socket(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "hands.sock")
            with self.assertRaises(mh.Unreachable) as caught:
                mh.Hands(socket_path=path).whoami()
            self.assertEqual(caught.exception.message, f"cannot reach momin-init at {path}: No such file or directory")

    def test_a_server_that_never_answers_times_out(self) -> None:
        release = threading.Event()

        def silent(connection: socket.socket, server: FakeInit) -> None:
            server.requests.append(read_frame(connection))
            release.wait(10)
        server = FakeInit(silent)
        try:
            started = time.monotonic()
            with self.assertRaises(mh.TimedOut) as caught:
                server.client(reply_timeout=0.3).bucket_get("n", "k")
            self.assertEqual(caught.exception.message, "bucket_get: no reply from momin-init within 0.3 s")
            self.assertEqual(caught.exception.exit_status, 124)
            self.assertLess(time.monotonic() - started, 3)
            release.set()

            # A blocking call waits its own timeout and the margin.
            release.clear()
            started = time.monotonic()
            with self.assertRaises(mh.TimedOut) as blocked:
                server.client(reply_timeout=0.01, margin=0.3).door_receive("inbox", timeout=0.2)
            self.assertGreaterEqual(time.monotonic() - started, 0.5)
            self.assertEqual(blocked.exception.message, "door_receive: no reply from momin-init within 0.5 s")
            release.set()
        finally:
            release.set()
            server.close()

    def test_read_deadlines(self) -> None:
        self.assertEqual(mh.request_door_receive("d").blocks_for, 30.0)
        self.assertEqual(mh.request_door_send("d", "t", b"", timeout=2).blocks_for, 2.0)
        # wait without a timeout waits as long as the child runs: no deadline on this side.
        self.assertIsNone(mh.request_wait("c").blocks_for)
        self.assertEqual(mh.request_wait("c", 5).blocks_for, 5.0)
        self.assertEqual(mh.request_spawn("c", b"", ["true"]).blocks_for, 0.0)

    def test_a_refusal_is_read_although_the_call_was_cut_short(self) -> None:
        refusal = mh.Request("failed", mh.KIND_FAILED, (struct.pack("<I", 6), b"momin-init: too many hands calls at once")).encode()

        def refuse(connection: socket.socket, server: FakeInit) -> None:
            connection.sendall(refusal)
        server = FakeInit(refuse)
        try:
            with self.assertRaises(mh.Failed) as caught:
                server.client().bucket_put("n", "k", bytes(mh.MAX_DATA))
            self.assertEqual(caught.exception.message, "momin-init: too many hands calls at once")
        finally:
            server.close()

    def test_the_socket_path_comes_from_the_environment(self) -> None:
        with mock.patch.dict(os.environ, {"MOMIN_HANDS_SOCKET": "/a", "HANDS_SOCKET": "/b"}):
            self.assertEqual(mh.default_socket_path(), "/a")
        with mock.patch.dict(os.environ, {"MOMIN_HANDS_SOCKET": "", "HANDS_SOCKET": "/b"}):
            self.assertEqual(mh.default_socket_path(), "/b")
        with mock.patch.dict(os.environ, {}, clear=True):
            self.assertEqual(mh.default_socket_path(), "/run/momin/hands.sock")
        self.assertEqual(mh.brain_url(), "http://brain.momin/v1")


class BoundsTests(unittest.TestCase):
    """What the relay's decoder would refuse is refused here, before any connection."""

    def setUp(self) -> None:
        self.server = FakeInit.answering(reply_frame("empty"))
        self.hands = self.server.client()

    def tearDown(self) -> None:
        self.server.close()

    def refused(self, message: str, verb: str, *args: Any, **kwargs: Any) -> None:
        with self.assertRaises(mh.Invalid) as caught:
            getattr(self.hands, verb)(*args, **kwargs)
        self.assertEqual(caught.exception.message, message)
        self.assertEqual((caught.exception.code, caught.exception.exit_status), (3, 64))

    def test_names(self) -> None:
        self.refused("bucket_put: namespace is empty", "bucket_put", "", "k", b"")
        self.refused("bucket_get: key is 256 bytes, at most 255", "bucket_get", "n", "k" * 256)
        self.refused("bucket_get: key is 256 bytes, at most 255", "bucket_get", "n", "é" * 128)
        self.refused("door_send: to holds a control character", "door_send", "d", "a\nb", b"")
        self.refused("stop: agent holds a control character", "stop", "a\x7f")
        self.refused("wait: agent holds a control character", "wait", "\x00")
        self.refused("door_receive: door must be a str, not bytes", "door_receive", b"inbox")
        self.refused("bucket_get: key is not valid Unicode (a lone surrogate)", "bucket_get", "n", "\udc80")
        self.refused("bucket_query: namespace is empty", "bucket_query", "")
        self.refused("spawn: disk holds a control character", "spawn", "c", b"", ["true"], disks=["a\tb"])
        self.assertEqual(self.server.connections, 0)
        # At the bounds: 255 bytes, an empty prefix.
        self.hands.bucket_get("n", "é" * 127 + "k")
        self.hands.bucket_query("n", "")
        self.assertEqual(self.server.connections, 2)

    def test_data_and_numbers(self) -> None:
        over = bytes(mh.MAX_DATA + 1)
        self.refused("bucket_put: value is 1048577 bytes, over the 1048576-byte limit", "bucket_put", "n", "k", over)
        self.refused("door_send: message is 1048577 bytes, over the 1048576-byte limit", "door_send", "d", "t", over)
        self.refused("bucket_put: value must be bytes or str, not int", "bucket_put", "n", "k", 5)
        self.refused("door_send: timeout must be a number of seconds (0 or more), not -1", "door_send", "d", "t", b"", timeout=-1)
        self.refused("door_receive: timeout must be a number of seconds (0 or more), not nan", "door_receive", "d", timeout=float("nan"))
        self.refused("wait: timeout must be a number of seconds (0 or more), not inf", "wait", "c", timeout=float("inf"))
        self.refused("spawn: vcpus must be a whole number from 1 to 4294967295, not 0", "spawn", "c", b"", ["true"], vcpus=0)
        self.refused("spawn: memory_mib must be a whole number from 1 to 4294967295, not 4294967296", "spawn", "c", b"", ["true"],
                     memory_mib=1 << 32)
        self.assertEqual(self.server.connections, 0)
        self.hands.bucket_put("n", "k", bytes(mh.MAX_DATA))
        self.hands.bucket_put("n", "k", "text is sent as UTF-8")
        self.assertEqual(self.server.connections, 2)

    def test_spawn(self) -> None:
        self.refused("spawn: argv must have 1 to 4096 entries, not 0", "spawn", "c", b"", [])
        self.refused("spawn: argv must be a list of str (the command and its arguments), not one string", "spawn", "c", b"", "true")
        self.refused("spawn: argv[1] is 131073 bytes, at most 131072", "spawn", "c", b"", ["echo", "x" * 131_073])
        self.refused("spawn: env needs NAME=VALUE, not '=x'", "spawn", "c", b"", ["true"], env=["=x"])
        self.refused("spawn: env needs NAME=VALUE, not 'PATH'", "spawn", "c", b"", ["true"], env=["PATH"])
        self.refused("spawn: at most 8 disks, not 9", "spawn", "c", b"", ["true"], disks=[f"d{i}" for i in range(8)], image=True)
        self.refused("spawn: policy_format must be \"yaml\" or \"json\", not 'toml'", "spawn", "c", b"", ["true"], policy_format="toml")
        self.refused("spawn: policy is 1048577 bytes, over the 1048576-byte limit", "spawn", "c", bytes(mh.MAX_DATA + 1), ["true"])
        self.refused("spawn: cannot read the policy /nonexistent/p.yaml: No such file or directory", "spawn", "c",
                     pathlib.Path("/nonexistent/p.yaml"), ["true"])
        self.refused(f"spawn: the call's payload is 1441887 bytes, over the {mh.MAX_PAYLOAD}-byte limit of a hands frame", "spawn", "c", b"",
                     ["x" * 131_072] * 11)
        self.assertEqual(self.server.connections, 0)

    def test_spawn_policies_and_environment(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = pathlib.Path(directory) / "child.json"
            path.write_bytes(b'{"agent": "child"}')
            request = mh.request_spawn("c", path, ["true"], env={"A": "1", "B": "x=y"})
            self.assertEqual(request.fields[1:3], (b'{"agent": "child"}', b"json"))
            self.assertEqual(request.fields[-2:], (b"A=1", b"B=x=y"))
        self.assertEqual(mh.request_spawn("c", "agent: c\n", ["true"]).fields[2], b"yaml")
        self.assertEqual(mh.request_spawn("c", '  {"agent": "c"}', ["true"]).fields[2], b"json")
        self.assertEqual(mh.request_spawn("c", b"{}", ["true"], policy_format="yaml").fields[2], b"yaml")


class ManifestTests(unittest.TestCase):
    def test_each_malformed_manifest_is_refused_as_the_swift_client_refuses_it(self) -> None:
        self.assertGreater(len(VECTORS["manifests"]), 30)
        for vector in VECTORS["manifests"]:
            with self.subTest(vector.get("error"), fields=vector["fields"][:2]):
                if "error" in vector:
                    with self.assertRaises(mh.Unreachable) as caught:
                        mh.parse_manifest(vector["fields"])
                    self.assertEqual(caught.exception.message, "the host's install manifest is not understood: " + vector["error"])
                    self.assertEqual(caught.exception.exit_status, 70)
                else:
                    manifest = mh.parse_manifest(vector["fields"])
                    self.assertEqual([manifest.install] + ["\t".join((f.name, f.version, f.filename, str(f.size), f.sha256))
                                                           for f in manifest.files], vector["fields"])

    def test_at_most_1024_files(self) -> None:
        lines = [f"p{i}\t1\tp{i}-1-py3-none-any.whl\t1\t{'ab' * 32}" for i in range(1025)]
        self.assertEqual(len(mh.parse_manifest(["i"] + lines[:-1]).files), 1024)
        with self.assertRaises(mh.Unreachable) as caught:
            mh.parse_manifest(["i"] + lines)
        self.assertEqual(caught.exception.message, "the host's install manifest is not understood: 1025 files, at most 1024")


class InstallTests(unittest.TestCase):
    """install_pip against a fake momin-init that serves an install: the manifest, then each
    file from the offset asked, at most 1 MiB a reply; a stand-in for python records how pip
    was run and what the directory held."""

    BIG = "pefile-2024.8.26-py3-none-any.whl"
    SMALL = "ordlookup-1.0-py3-none-any.whl"

    def setUp(self) -> None:
        self.scratch = tempfile.TemporaryDirectory()
        root = pathlib.Path(self.scratch.name)
        self.temporary = root / "tmp"
        self.record = root / "record"
        for directory in (self.temporary, self.record, self.record / "copy"):
            directory.mkdir()
        self.files = {self.BIG: bytes(i * 7 % 251 for i in range(2 * mh.MAX_DATA + 12_345)), self.SMALL: b"PK\x03\x04 a small wheel"}
        self.hashes = {name: hashlib.sha256(data).hexdigest() for name, data in self.files.items()}
        self.order = [("pefile", "2024.8.26", self.BIG), ("ordlookup", "1.0", self.SMALL)]
        self.pieces: list[tuple[int, int]] = []
        self.piece: Callable[[int, int], bytes | None] = lambda index, offset: None
        self.install_reply = ok_frame(["3f2a-01"] + [f"{n}\t{v}\t{f}\t{len(self.files[f])}\t{self.hashes[f]}" for n, v, f in self.order])
        self.server = FakeInit(self._serve)
        self.addCleanup(self.server.close)
        self.addCleanup(self.scratch.cleanup)
        patch = mock.patch.object(tempfile, "tempdir", str(self.temporary))
        patch.start()
        self.addCleanup(patch.stop)

    def _serve(self, connection: socket.socket, server: FakeInit) -> None:
        frame = read_frame(connection)
        server.requests.append(frame)
        kind = frame[3]
        if kind == mh.KIND_INSTALL:
            connection.sendall(self.install_reply)
            return
        fields = mh.split_fields(frame[mh.HEADER_SIZE:])
        index, offset = struct.unpack("<I", fields[1])[0], struct.unpack("<Q", fields[2])[0]
        self.pieces.append((index, offset))
        data = self.piece(index, offset)
        if data is None:
            data = self.files[self.order[index][2]][offset:offset + mh.MAX_DATA]
        connection.sendall(ok_frame([], data))

    def python(self, ending: str = "exit 0") -> str:
        script = self.record.parent / "python3"
        script.write_text(f"""#!/bin/sh
previous=
for argument in "$@"; do
  [ "$previous" = --find-links ] && dir=$argument
  previous=$argument
done
printf '%s\\n' "$@" > {self.record}/argv
stat -c %a "$dir" > {self.record}/mode
ls -A "$dir" > {self.record}/files
cp "$dir"/* {self.record}/copy/
{ending}
""")
        script.chmod(0o755)
        return str(script)

    def test_the_files_arrive_in_pieces_and_pip_installs_them_hash_checked(self) -> None:
        installed = self.server.client().install_pip("pefile==2024.8.26", python=self.python())
        self.assertEqual(installed, [("pefile", "2024.8.26", self.BIG, self.hashes[self.BIG]),
                                     ("ordlookup", "1.0", self.SMALL, self.hashes[self.SMALL])])
        self.assertEqual(self.server.requests[0], mh.request_install("pip", ["pefile==2024.8.26"]).encode())
        self.assertEqual(self.pieces, [(0, 0), (0, mh.MAX_DATA), (0, 2 * mh.MAX_DATA), (1, 0)])
        self.assertEqual(self.server.requests[2], mh.request_install_file("3f2a-01", 0, mh.MAX_DATA).encode())
        argv = (self.record / "argv").read_text().splitlines()
        directory = argv[5]
        self.assertTrue(directory.startswith(str(self.temporary / "hands-install.")), directory)
        self.assertEqual(argv, ["-m", "pip", "install", "--no-index", "--find-links", directory, "--require-hashes", "--no-cache-dir",
                                "--disable-pip-version-check", "--break-system-packages", "--root-user-action=ignore", "-r", directory + "/requirements.txt"])
        self.assertEqual((self.record / "mode").read_text(), "700\n")
        self.assertEqual((self.record / "files").read_text(), f"{self.SMALL}\n{self.BIG}\nrequirements.txt\n")
        self.assertEqual((self.record / "copy" / "requirements.txt").read_text(),
                         f"pefile==2024.8.26 --hash=sha256:{self.hashes[self.BIG]}\n"
                         f"ordlookup==1.0 --hash=sha256:{self.hashes[self.SMALL]}\n")
        for name, data in self.files.items():
            self.assertEqual((self.record / "copy" / name).read_bytes(), data, name)
        self.assertEqual(os.listdir(self.temporary), [])

    def test_pip_failing_is_pip_failed_with_its_status(self) -> None:
        with self.assertRaises(mh.PipFailed) as caught:
            self.server.client().install_pip(["pefile"], python=self.python("exit 3"))
        self.assertEqual((caught.exception.message, caught.exception.exit_status), ("pip exited with status 3", 3))
        self.assertIsInstance(caught.exception, mh.Failed)
        with self.assertRaises(mh.PipFailed) as signaled:
            self.server.client().install_pip(["pefile"], python=self.python("kill -TERM $$"))
        self.assertEqual((signaled.exception.message, signaled.exception.exit_status), ("pip was ended by signal 15", 143))
        self.assertEqual(os.listdir(self.temporary), [])

    def test_a_file_whose_hash_differs_is_refused_before_pip(self) -> None:
        self.piece = lambda index, offset: b"X" * len(self.files[self.SMALL]) if index == 1 else None
        with self.assertRaises(mh.Failed) as caught:
            self.server.client().install_pip(["pefile"], python=self.python())
        wrong = hashlib.sha256(b"X" * len(self.files[self.SMALL])).hexdigest()
        self.assertEqual(caught.exception.message, f"{self.SMALL} arrived with SHA-256 {wrong}, not the {self.hashes[self.SMALL]} the host logged")
        self.assertFalse((self.record / "argv").exists())
        self.assertEqual(os.listdir(self.temporary), [])

    def test_a_piece_that_overruns_or_a_file_that_comes_short(self) -> None:
        size = len(self.files[self.SMALL])
        self.piece = lambda index, offset: b"X" * (size + 1) if index == 1 else None
        with self.assertRaises(mh.Unreachable) as over:
            self.server.client().install_pip(["pefile"], python=self.python())
        self.assertEqual(over.exception.message, f"the host sent more of {self.SMALL} than its {size} bytes ({size + 1} at offset 0)")
        self.piece = lambda index, offset: b"" if offset == 2 * mh.MAX_DATA else None
        with self.assertRaises(mh.Unreachable) as short:
            self.server.client().install_pip(["pefile"], python=self.python())
        self.assertEqual(short.exception.message,
                         f"the host sent {self.BIG} short: {2 * mh.MAX_DATA} of its {len(self.files[self.BIG])} bytes")
        self.assertFalse((self.record / "argv").exists())
        self.assertEqual(os.listdir(self.temporary), [])

    def test_a_denial_carries_the_hosts_message(self) -> None:
        why = 'denied by policy (install): packages.pip (line 4): pip package "requests" is not among packages.pip.allow'
        self.install_reply = mh.Request("failed", mh.KIND_FAILED, (struct.pack("<I", 1), why.encode())).encode()
        with self.assertRaises(mh.Denied) as caught:
            self.server.client().install_pip(["requests"], python=self.python())
        self.assertEqual((caught.exception.message, caught.exception.exit_status), (why, 77))
        self.assertEqual(self.pieces, [])
        self.assertEqual(os.listdir(self.temporary), [])

    def test_a_bad_manifest_fetches_nothing(self) -> None:
        self.install_reply = ok_frame(["i", f"pefile\t1\t../pefile-1-py3-none-any.whl\t10\t{'5e' * 32}"])
        with self.assertRaises(mh.Unreachable) as caught:
            self.server.client().install_pip(["pefile"], python=self.python())
        self.assertEqual(caught.exception.message, "the host's install manifest is not understood: line 1: FILENAME "
                                                   '"../pefile-1-py3-none-any.whl" is not a plain .whl file name of at most 255 bytes')
        self.assertEqual((self.pieces, os.listdir(self.temporary)), ([], []))

    def test_a_failed_piece_names_the_file(self) -> None:
        refusal = mh.Request("failed", mh.KIND_FAILED, (struct.pack("<I", 2), b"no install 3f2a-01")).encode()

        def serve(connection: socket.socket, server: FakeInit) -> None:
            frame = read_frame(connection)
            connection.sendall(self.install_reply if frame[3] == mh.KIND_INSTALL else refusal)
        self.server.handler = serve
        with self.assertRaises(mh.NotFound) as caught:
            self.server.client().install_pip(["pefile"], python=self.python())
        self.assertEqual(caught.exception.message, f"fetching {self.BIG}: no install 3f2a-01")
        self.assertEqual(os.listdir(self.temporary), [])

    def test_a_python_that_cannot_start(self) -> None:
        missing = str(self.record.parent / "no-python")
        with self.assertRaises(mh.Failed) as caught:
            self.server.client().install_pip(["pefile"], python=missing)
        self.assertEqual(caught.exception.message, f"cannot start {missing}: No such file or directory")
        self.assertEqual(os.listdir(self.temporary), [])

    def test_the_default_python_is_this_one(self) -> None:
        with mock.patch("subprocess.run") as run:
            run.return_value.returncode = 0
            self.server.client().install_pip(["pefile"])
        self.assertEqual(run.call_args.args[0][:4], [sys.executable, "-m", "pip", "install"])

    def test_bounds(self) -> None:
        cases = [
            (lambda: mh.request_install("pip", []), "install: requirements must have 1 to 64 entries, not 0"),
            (lambda: mh.request_install("pip", ["a"] * 65), "install: requirements must have 1 to 64 entries, not 65"),
            (lambda: mh.request_install("pip", ["r" * 1025]), "install: requirements[0] is 1025 bytes, at most 1024"),
            (lambda: mh.request_install("pip", ["a", ""]), "install: requirements[1] is empty"),
            (lambda: mh.request_install("pip", ["a\n--index-url=x"]), "install: requirements[0] holds a control character"),
            (lambda: mh.request_install("pip", ["-e ."]), "install: requirements[0] '-e .' does not start with a project name (PEP 508)"),
            (lambda: mh.request_install("pip", [b"pefile"]), "install: requirements[0] must be a str, not bytes"),
            (lambda: mh.request_install("e" * 17, ["a"]), "install: ecosystem is 17 bytes, at most 16"),
            (lambda: mh.request_install_file("a b", 0, 0), "install_file: install must be an install id (1 to 64 letters, digits or -), not 'a b'"),
            (lambda: mh.request_install_file("i", -1, 0), "install_file: file must be a whole number from 0 to 4294967295, not -1"),
            (lambda: mh.request_install_file("i", 0, 1 << 64), f"install_file: offset must be a whole number from 0 to {(1 << 64) - 1}, not {1 << 64}"),
        ]
        for make, message in cases:
            with self.subTest(message):
                with self.assertRaises(mh.Invalid) as caught:
                    make()
                self.assertEqual(caught.exception.message, message)
        self.assertEqual(mh.request_install("pip", "pefile").fields, (b"pip", b"pefile"))
        self.assertIsNone(mh.request_install("pip", ["a"] * 64).blocks_for)
        self.assertEqual(len(mh.request_install("pip", ["r" * 1024] * 64).encode()), 8 + 2 + 4 + 3 + 64 * 1028)


class AptInstallTests(unittest.TestCase):
    """install_apt against a fake momin-init that answers the install with two mirrors; a
    stand-in apt-get, the only one on PATH (never the system's), records each run's arguments
    and environment."""

    MIRRORS = ["http://127.0.0.1:8080/debian", "http://127.0.0.1:8080/debian-security"]
    OPTIONS = "-o Acquire::http::Proxy={} -o Acquire::http::Pipeline-Depth=0 -o Acquire::Retries=0"
    ENVIRONMENT = "DEBIAN_FRONTEND=noninteractive no_proxy=unset NO_PROXY=unset KEPT=yes"

    def setUp(self) -> None:
        self.scratch = tempfile.TemporaryDirectory()
        self.addCleanup(self.scratch.cleanup)
        self.root = pathlib.Path(self.scratch.name)
        self.runs = self.root / "runs"
        self.server = FakeInit.answering(ok_frame(self.MIRRORS))
        self.addCleanup(self.server.close)
        self.environment: dict[str, str] = {"PATH": str(self.root), "KEPT": "yes", "no_proxy": "127.0.0.1",
                                            "NO_PROXY": "127.0.0.1", "DEBIAN_FRONTEND": "dialog", "http_proxy": "http://127.0.0.1:3128"}

    def apt_get(self, update: str = "exit 0", install: str = "exit 0") -> None:
        script = self.root / "apt-get"
        script.write_text(f"""#!/bin/sh
printf '%s\\n' "apt-get $*" "DEBIAN_FRONTEND=${{DEBIAN_FRONTEND-unset}} no_proxy=${{no_proxy-unset}} NO_PROXY=${{NO_PROXY-unset}} KEPT=${{KEPT-unset}}" >> {self.runs}
for argument in "$@"; do
  [ "$argument" = update ] && {{ {update}; }}
done
{install}
""")
        script.chmod(0o755)

    def install(self, names: Any) -> str:
        """install_apt(names) in the test's environment; what it said on stderr."""
        stderr = io.StringIO()
        with mock.patch.dict(os.environ, self.environment, clear=True), mock.patch("sys.stderr", stderr):
            self.assertIsNone(self.server.client().install_apt(names))
        return stderr.getvalue()

    def recorded(self) -> list[str]:
        return self.runs.read_text().splitlines() if self.runs.exists() else []

    def test_update_then_install_through_the_proxy(self) -> None:
        self.apt_get()
        said = self.install(["momin-tool", "momin-lib"])
        self.assertEqual(self.server.requests, [mh.request_install("apt", ["momin-tool", "momin-lib"]).encode()])
        options = self.OPTIONS.format("http://127.0.0.1:3128")
        self.assertEqual(self.recorded(), [f"apt-get {options} update", self.ENVIRONMENT,
                                           f"apt-get {options} install -y --no-install-recommends momin-tool momin-lib", self.ENVIRONMENT])
        self.assertEqual(said, "".join(f"momin_hands: apt may reach {mirror}\n" for mirror in self.MIRRORS))

    def test_without_http_proxy_apt_uses_momin_inits(self) -> None:
        self.apt_get()
        del self.environment["http_proxy"]
        self.install("momin-tool")
        self.assertEqual(self.recorded()[0], f"apt-get {self.OPTIONS.format('http://127.0.0.1:3128')} update")
        self.environment["http_proxy"] = "http://10.0.0.1:8000"
        self.install("momin-tool")
        self.assertEqual(self.recorded()[4], f"apt-get {self.OPTIONS.format('http://10.0.0.1:8000')} update")

    def test_a_failed_update_installs_nothing(self) -> None:
        self.apt_get(update="exit 100")
        with self.assertRaises(mh.AptFailed) as caught:
            self.install(["momin-tool"])
        self.assertEqual((caught.exception.exit_status, caught.exception.message), (100, "apt-get update exited with status 100"))
        self.assertEqual(len(self.recorded()), 2)

    def test_a_failed_install_is_its_status(self) -> None:
        self.apt_get(install="exit 100")
        with self.assertRaises(mh.AptFailed) as caught:
            self.install(["momin-needs-bad"])
        self.assertEqual((caught.exception.exit_status, caught.exception.message), (100, "apt-get install exited with status 100"))
        self.assertEqual(len(self.recorded()), 4)

    def test_apt_get_ended_by_a_signal(self) -> None:
        self.apt_get(install="kill -TERM $$")
        with self.assertRaises(mh.AptFailed) as caught:
            self.install(["momin-tool"])
        self.assertEqual(caught.exception.exit_status, 128 + 15)
        self.assertIsInstance(caught.exception, mh.Failed)

    def test_a_denial_runs_no_apt(self) -> None:
        self.apt_get()
        why = 'momin-bad: denied by policy (packages.apt, line 9): apt package "momin-bad" is not among packages.apt.allow'
        self.server.close()
        self.server = FakeInit.answering(mh.Request("failed", mh.KIND_FAILED, (struct.pack("<I", 1), why.encode())).encode())
        self.addCleanup(self.server.close)
        with self.assertRaises(mh.Denied) as caught:
            self.install(["momin-bad"])
        self.assertEqual((caught.exception.message, caught.exception.exit_status), (why, 77))
        self.assertEqual(self.recorded(), [])

    def test_no_apt_get(self) -> None:
        with self.assertRaises(mh.Failed) as caught:
            self.install(["momin-tool"])
        self.assertNotIsInstance(caught.exception, mh.AptFailed)
        self.assertEqual((caught.exception.message, caught.exception.exit_status), ("cannot start apt-get: No such file or directory", 70))

    def test_names_are_checked_before_anything_is_sent(self) -> None:
        debian = "(lower case letters, digits, + - ., at least 2, starting with a letter or digit)"
        for names, message in [
            (["Binwalk"], f"install_apt: names[0] 'Binwalk' is not a Debian package name {debian}"),
            (["xz-utils", "-o"], f"install_apt: names[1] '-o' is not a Debian package name {debian}"),
            (["b"], f"install_apt: names[0] 'b' is not a Debian package name {debian}"),
            (["binwalk=2.3.4"], f"install_apt: names[0] 'binwalk=2.3.4' is not a Debian package name {debian}"),
            (["xz\nutils"], f"install_apt: names[0] 'xz\\nutils' is not a Debian package name {debian}"),
            ([b"binwalk"], "install_apt: names[0] must be a str, not bytes"),
            (["r" * 1025], "install_apt: names[0] is 1025 bytes, at most 1024"),
            ([], "install: requirements must have 1 to 64 entries, not 0"),
            (["rr"] * 65, "install: requirements must have 1 to 64 entries, not 65"),
        ]:
            with self.subTest(message), self.assertRaises(mh.Invalid) as caught:
                self.server.client().install_apt(names)
            self.assertEqual(caught.exception.message, message)
        self.assertEqual(self.server.connections, 0)
        self.assertEqual(mh.request_install("apt", "libstdc++6").fields, (b"apt", b"libstdc++6"))

    def test_the_command_line(self) -> None:
        self.apt_get(install="exit 100")
        with mock.patch.dict(os.environ, {**self.environment, "MOMIN_HANDS_SOCKET": self.server.path}, clear=True), \
                mock.patch("sys.stderr", io.StringIO()) as stderr, mock.patch("sys.stdout"):
            self.assertEqual(mh.main(["install", "apt", "momin-tool"]), 100)
            self.assertEqual(mh.main(["install", "apt", "--python", "python3", "momin-tool"]), 64)
        self.assertIn("momin_hands: apt-get install exited with status 100\n", stderr.getvalue())
        self.assertIn("momin_hands: install apt has no option --python\n", stderr.getvalue())


class CommandLineTests(unittest.TestCase):
    def test_exit_statuses_are_the_hands_commands(self) -> None:
        server = FakeInit.answering(reply_frame("denied"))
        try:
            with mock.patch.dict(os.environ, {"MOMIN_HANDS_SOCKET": server.path}), \
                    mock.patch("sys.stderr") as stderr, mock.patch("sys.stdout"):
                self.assertEqual(mh.main(["bucket", "get", "n", "k"]), 77)
            self.assertIn("momin_hands: denied: déjà vu", "".join(c.args[0] for c in stderr.write.call_args_list))
        finally:
            server.close()
        with mock.patch("sys.stderr"):
            self.assertEqual(mh.main(["bucket", "put", "", "k", "v"]), 64)


if __name__ == "__main__":
    unittest.main()
