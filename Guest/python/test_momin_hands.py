"""Tests of momin_hands: frames byte for byte against the Swift codec's (testdata/frames.json,
which the Swift test PythonVectorsTests keeps equal to what HandsCallCodec encodes), replies and
failures from a fake momin-init on a temporary Unix socket, replies cut short or never sent,
and the bounds checked before sending.

    cd Guest/python && python3 -m unittest
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import struct
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
             mh.MAX_MESSAGE_LENGTH, mh.MAX_ARGUMENTS, mh.MAX_ARGUMENT_LENGTH, mh.MAX_ENVIRONMENT, mh.MAX_DISKS),
            (protocol["magic"], protocol["version"], protocol["headerSize"], protocol["maxData"], protocol["maxPayload"],
             protocol["maxFields"], protocol["maxNameLength"], protocol["maxMessageLength"], protocol["maxArguments"],
             protocol["maxArgumentLength"], protocol["maxEnvironment"], protocol["maxDisks"]))
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
                                 "stop", "whoami"})

    def test_the_client_sends_exactly_those_frames(self) -> None:
        answers = {"bucket_get": "value", "bucket_query": "query", "door_send": "sequence", "door_receive": "message",
                   "spawn": "spawned", "wait": "exited", "whoami": "identity"}
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
