// Payload layouts, one per frame type; docs/doors-protocol.md has the same tables. Integers are
// little-endian, a string is a UInt32 byte count then that many UTF-8 bytes, a Bool is one byte
// (0 or 1), and an optional is a tag byte (0 absent, 1 present) then the value when present.
// Encoding and decoding run the same checks, so neither side can build what the other rejects.

extension DoorsMessage {
    /// Appends this message's payload to `out`, checking every bound and rule on the way.
    func encodePayload(into out: inout [UInt8]) throws(PayloadProblem) {
        switch self {
        case .hello(let hello):
            try Check.versions(hello.versions)
            try Check.helloMaxPayload(hello.maxPayload)
            out.append(UInt8(hello.versions.count))
            out.append(contentsOf: hello.versions)
            out.appendLittleEndian(hello.maxPayload)
            try out.appendString(hello.software, .software, maxLength: DoorsLimits.maxSoftwareLength)
        case .error(let reply):
            out.appendLittleEndian(reply.code.rawValue)
            if let errno = reply.errno {
                out.append(1)
                out.appendLittleEndian(errno)
            } else {
                out.append(0)
            }
            try out.appendString(reply.message, .message, maxLength: DoorsLimits.maxMessageLength)
        case .ok(let count):
            out.appendLittleEndian(count)
        case .ping(let nonce), .pong(let nonce):
            out.appendLittleEndian(nonce)
        case .cancel, .stdinEnd, .fileEnd, .listEnd:
            break
        case .stdinData(let bytes), .stdoutData(let bytes), .stderrData(let bytes), .fileData(let bytes):
            out.append(contentsOf: bytes)

        case .exec(let request):
            try Check.count(request.argv.count, .argv, bound: DoorsLimits.maxArguments)
            guard let program = request.argv.first else { throw .empty(.argv) }
            guard !program.isEmpty else { throw .empty(.argv) }
            out.appendLittleEndian(UInt32(request.argv.count))
            for argument in request.argv {
                try out.appendString(argument, .argv, maxLength: DoorsLimits.maxArgumentLength)
                try Check.noNUL(argument, .argv)
            }
            try Check.count(request.env.count, .env, bound: DoorsLimits.maxEnvironment)
            out.appendLittleEndian(UInt32(request.env.count))
            for entry in request.env {
                try out.appendString(entry, .env, maxLength: DoorsLimits.maxArgumentLength)
                try Check.environmentEntry(entry)
            }
            if let cwd = request.cwd {
                out.append(1)
                try out.appendPath(cwd, .cwd)
            } else {
                out.append(0)
            }
            out.append(request.sendsStdin ? 1 : 0)
            if let timeout = request.timeoutMilliseconds {
                guard timeout > 0 else { throw .outOfRange(.timeout, 0) }
                out.append(1)
                out.appendLittleEndian(timeout)
            } else {
                out.append(0)
            }
            if let program = request.program {
                out.append(1)
                try out.appendPath(program, .program)
            } else {
                out.append(0)
            }
        case .started(let pid):
            guard pid > 0 else { throw .outOfRange(.pid, Int64(pid)) }
            out.appendLittleEndian(pid)
        case .exit(let report):
            switch report.status {
            case .exited(let code):
                out.append(0)
                out.append(code)
            case .signaled(let signal):
                try Check.signal(signal)
                out.append(1)
                out.append(signal)
            }
            out.append(report.timedOut ? 1 : 0)
        case .kill(let signal):
            try Check.signal(signal)
            out.append(signal)

        case .writeFile(let request):
            try out.appendPath(request.path, .path)
            try Check.permissions(request.permissions)
            out.appendLittleEndian(request.permissions)
            guard WriteOptions.all.isSuperset(of: request.options) else {
                throw .unknownValue(.writeOptions, UInt64(request.options.rawValue))
            }
            out.append(request.options.rawValue)
        case .readFile(let request):
            try out.appendPath(request.path, .path)
            out.appendLittleEndian(request.offset)
            if let length = request.length {
                out.append(1)
                out.appendLittleEndian(length)
            } else {
                out.append(0)
            }
        case .stat(let request):
            try out.appendPath(request.path, .path)
            out.append(request.followSymlinks ? 1 : 0)
        case .statResult(let stat):
            try Check.permissions(stat.permissions)
            guard stat.mtimeNanoseconds < 1_000_000_000 else {
                throw .outOfRange(.mtimeNanoseconds, Int64(stat.mtimeNanoseconds))
            }
            out.append(stat.type.rawValue)
            out.appendLittleEndian(stat.permissions)
            out.appendLittleEndian(stat.size)
            out.appendLittleEndian(stat.mtimeSeconds)
            out.appendLittleEndian(stat.mtimeNanoseconds)
            out.appendLittleEndian(stat.nlink)
            out.appendLittleEndian(stat.uid)
            out.appendLittleEndian(stat.gid)
        case .list(let path), .resolve(let path), .resolved(let path):
            try out.appendPath(path, .path)
        case .listEntries(let entries):
            try Check.count(entries.count, .entries, bound: DoorsLimits.maxListBatch)
            out.appendLittleEndian(UInt32(entries.count))
            for entry in entries {
                out.append(entry.type.rawValue)
                try out.appendString(entry.name, .entryName, maxLength: DoorsLimits.maxNameLength)
                try Check.entryName(entry.name)
            }
        case .mkdir(let request):
            try out.appendPath(request.path, .path)
            try Check.permissions(request.permissions)
            out.appendLittleEndian(request.permissions)
            out.append(request.parents ? 1 : 0)
        case .remove(let request):
            try out.appendPath(request.path, .path)
            out.append(request.recursive ? 1 : 0)
        }
    }

    /// Decodes the payload of a frame of `type`. Data frames take `payload` as their bytes
    /// without copying it again.
    static func decode(type: FrameType, payload: [UInt8]) throws(PayloadProblem) -> DoorsMessage {
        switch type {
        case .stdinData: return .stdinData(payload)
        case .stdoutData: return .stdoutData(payload)
        case .stderrData: return .stderrData(payload)
        case .fileData: return .fileData(payload)
        default: break
        }
        var reader = PayloadReader(payload)
        let message = try reader.message(type)
        guard reader.remaining == 0 else { throw .trailingBytes(count: reader.remaining) }
        return message
    }
}

extension PayloadReader {
    fileprivate mutating func message(_ type: FrameType) throws(PayloadProblem) -> DoorsMessage {
        switch type {
        case .hello:
            let count = Int(try integer(UInt8.self, .versions))
            guard count <= DoorsLimits.maxVersions else {
                throw .countOverBound(.versions, count: count, bound: DoorsLimits.maxVersions)
            }
            let versions = try bytes(count, .versions)
            try Check.versions(versions)
            let maxPayload = try integer(UInt32.self, .maxPayload)
            try Check.helloMaxPayload(maxPayload)
            let software = try string(.software, maxLength: DoorsLimits.maxSoftwareLength)
            return .hello(Hello(versions: versions, maxPayload: maxPayload, software: software))
        case .error:
            let raw = try integer(UInt16.self, .errorCode)
            guard let code = ErrorCode(rawValue: raw) else { throw .unknownValue(.errorCode, UInt64(raw)) }
            let errno = try optional(.errno) { (r: inout PayloadReader) throws(PayloadProblem) in
                try r.integer(Int32.self, .errno)
            }
            let message = try string(.message, maxLength: DoorsLimits.maxMessageLength)
            return .error(ErrorReply(code: code, errno: errno, message: message))
        case .ok:
            return .ok(count: try integer(UInt64.self, .count))
        case .ping:
            return .ping(nonce: try integer(UInt64.self, .nonce))
        case .pong:
            return .pong(nonce: try integer(UInt64.self, .nonce))
        case .cancel: return .cancel
        case .stdinEnd: return .stdinEnd
        case .fileEnd: return .fileEnd
        case .listEnd: return .listEnd
        case .stdinData, .stdoutData, .stderrData, .fileData:
            preconditionFailure("data frames are decoded without a reader")

        case .exec:
            let argc = try count(.argv, bound: DoorsLimits.maxArguments, minimumEntrySize: 4)
            guard argc > 0 else { throw .empty(.argv) }
            var argv: [String] = []
            argv.reserveCapacity(argc)
            for _ in 0..<argc {
                let argument = try string(.argv, maxLength: DoorsLimits.maxArgumentLength)
                try Check.noNUL(argument, .argv)
                argv.append(argument)
            }
            guard !argv[0].isEmpty else { throw .empty(.argv) }
            let envc = try count(.env, bound: DoorsLimits.maxEnvironment, minimumEntrySize: 4)
            var env: [String] = []
            env.reserveCapacity(envc)
            for _ in 0..<envc {
                let entry = try string(.env, maxLength: DoorsLimits.maxArgumentLength)
                try Check.environmentEntry(entry)
                env.append(entry)
            }
            let cwd = try optional(.cwd) { (r: inout PayloadReader) throws(PayloadProblem) in try r.path(.cwd) }
            let sendsStdin = try bool(.sendsStdin)
            let timeout = try optional(.timeout) { (r: inout PayloadReader) throws(PayloadProblem) in
                let value = try r.integer(UInt32.self, .timeout)
                guard value > 0 else { throw .outOfRange(.timeout, 0) }
                return value
            }
            let program = try optional(.program) { (r: inout PayloadReader) throws(PayloadProblem) in try r.path(.program) }
            return .exec(ExecRequest(argv: argv, env: env, cwd: cwd, sendsStdin: sendsStdin, timeoutMilliseconds: timeout,
                                     program: program))
        case .started:
            let pid = try integer(Int32.self, .pid)
            guard pid > 0 else { throw .outOfRange(.pid, Int64(pid)) }
            return .started(pid: pid)
        case .exit:
            let kind = try integer(UInt8.self, .exitKind)
            let status: Termination
            switch kind {
            case 0:
                status = .exited(code: try integer(UInt8.self, .exitCode))
            case 1:
                let signal = try integer(UInt8.self, .signal)
                try Check.signal(signal)
                status = .signaled(signal: signal)
            default:
                throw .unknownValue(.exitKind, UInt64(kind))
            }
            return .exit(ExitReport(status: status, timedOut: try bool(.timedOut)))
        case .kill:
            let signal = try integer(UInt8.self, .signal)
            try Check.signal(signal)
            return .kill(signal: signal)

        case .writeFile:
            let path = try path(.path)
            let permissions = try integer(UInt32.self, .permissions)
            try Check.permissions(permissions)
            let raw = try integer(UInt8.self, .writeOptions)
            let options = WriteOptions(rawValue: raw)
            guard WriteOptions.all.isSuperset(of: options) else { throw .unknownValue(.writeOptions, UInt64(raw)) }
            return .writeFile(WriteFileRequest(path: path, permissions: permissions, options: options))
        case .readFile:
            let path = try path(.path)
            let offset = try integer(UInt64.self, .offset)
            let length = try optional(.length) { (r: inout PayloadReader) throws(PayloadProblem) in
                try r.integer(UInt64.self, .length)
            }
            return .readFile(ReadFileRequest(path: path, offset: offset, length: length))
        case .stat:
            let path = try path(.path)
            return .stat(StatRequest(path: path, followSymlinks: try bool(.followSymlinks)))
        case .statResult:
            let type = try fileType()
            let permissions = try integer(UInt32.self, .permissions)
            try Check.permissions(permissions)
            let size = try integer(UInt64.self, .size)
            let seconds = try integer(Int64.self, .mtimeSeconds)
            let nanoseconds = try integer(UInt32.self, .mtimeNanoseconds)
            guard nanoseconds < 1_000_000_000 else { throw .outOfRange(.mtimeNanoseconds, Int64(nanoseconds)) }
            let nlink = try integer(UInt64.self, .nlink)
            let uid = try integer(UInt32.self, .uid)
            let gid = try integer(UInt32.self, .gid)
            return .statResult(
                FileStat(
                    type: type, permissions: permissions, size: size, mtimeSeconds: seconds,
                    mtimeNanoseconds: nanoseconds, nlink: nlink, uid: uid, gid: gid))
        case .list:
            return .list(path: try path(.path))
        case .resolve:
            return .resolve(path: try path(.path))
        case .resolved:
            return .resolved(path: try path(.path))
        case .listEntries:
            let count = try count(.entries, bound: DoorsLimits.maxListBatch, minimumEntrySize: 5)
            var entries: [DirectoryEntry] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                let type = try fileType()
                let name = try string(.entryName, maxLength: DoorsLimits.maxNameLength)
                try Check.entryName(name)
                entries.append(DirectoryEntry(name: name, type: type))
            }
            return .listEntries(entries)
        case .mkdir:
            let path = try path(.path)
            let permissions = try integer(UInt32.self, .permissions)
            try Check.permissions(permissions)
            return .mkdir(MkdirRequest(path: path, permissions: permissions, parents: try bool(.parents)))
        case .remove:
            let path = try path(.path)
            return .remove(RemoveRequest(path: path, recursive: try bool(.recursive)))
        }
    }

    private mutating func path(_ field: DoorsField) throws(PayloadProblem) -> String {
        let path = try string(field, maxLength: DoorsLimits.maxPathLength)
        try Check.path(path, field)
        return path
    }

    private mutating func fileType() throws(PayloadProblem) -> FileType {
        let raw = try integer(UInt8.self, .fileType)
        guard let type = FileType(rawValue: raw) else { throw .unknownValue(.fileType, UInt64(raw)) }
        return type
    }
}

/// Reads fields front to back from one payload, never past its end.
struct PayloadReader {
    private let payload: [UInt8]
    private var index = 0

    init(_ payload: [UInt8]) { self.payload = payload }

    var remaining: Int { payload.count - index }

    mutating func integer<T: FixedWidthInteger>(_: T.Type, _ field: DoorsField) throws(PayloadProblem) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw .truncated(field) }
        let value = payload.withUnsafeBytes { [index] in $0.loadUnaligned(fromByteOffset: index, as: T.self) }
        index += size
        return T(littleEndian: value)
    }

    mutating func bytes(_ count: Int, _ field: DoorsField) throws(PayloadProblem) -> [UInt8] {
        guard remaining >= count else { throw .truncated(field) }
        defer { index += count }
        return Array(payload[index..<index + count])
    }

    mutating func bool(_ field: DoorsField) throws(PayloadProblem) -> Bool {
        switch try integer(UInt8.self, field) {
        case 0: return false
        case 1: return true
        case let other: throw .unknownValue(field, UInt64(other))
        }
    }

    /// A length-prefixed UTF-8 string; the bound is checked before anything is copied.
    mutating func string(_ field: DoorsField, maxLength: Int) throws(PayloadProblem) -> String {
        let length = Int(try integer(UInt32.self, field))
        guard length <= maxLength else { throw .lengthOverBound(field, length: length, bound: maxLength) }
        guard remaining >= length else { throw .truncated(field) }
        guard let string = String(validating: payload[index..<index + length], as: UTF8.self) else {
            throw .invalidUTF8(field)
        }
        index += length
        return string
    }

    /// A UInt32 entry count, checked against its bound and against the bytes left (each entry
    /// takes at least `minimumEntrySize`), so a caller may reserve capacity for it.
    mutating func count(_ field: DoorsField, bound: Int, minimumEntrySize: Int) throws(PayloadProblem) -> Int {
        let count = Int(try integer(UInt32.self, field))
        guard count <= bound else { throw .countOverBound(field, count: count, bound: bound) }
        guard count * minimumEntrySize <= remaining else { throw .truncated(field) }
        return count
    }

    mutating func optional<T>(
        _ field: DoorsField,
        _ read: (inout PayloadReader) throws(PayloadProblem) -> T
    ) throws(PayloadProblem) -> T? {
        switch try integer(UInt8.self, field) {
        case 0: return nil
        case 1: return try read(&self)
        case let other: throw .unknownValue(field, UInt64(other))
        }
    }
}

extension Array where Element == UInt8 {
    fileprivate mutating func appendString(_ string: String, _ field: DoorsField, maxLength: Int) throws(PayloadProblem) {
        let utf8 = string.utf8
        guard utf8.count <= maxLength else { throw .lengthOverBound(field, length: utf8.count, bound: maxLength) }
        appendLittleEndian(UInt32(utf8.count))
        append(contentsOf: utf8)
    }

    fileprivate mutating func appendPath(_ path: String, _ field: DoorsField) throws(PayloadProblem) {
        try appendString(path, field, maxLength: DoorsLimits.maxPathLength)
        try Check.path(path, field)
    }
}

/// The rules on field contents, shared by the encoder and the decoder.
enum Check {
    static func count(_ count: Int, _ field: DoorsField, bound: Int) throws(PayloadProblem) {
        guard count <= bound else { throw .countOverBound(field, count: count, bound: bound) }
    }

    static func noNUL(_ string: String, _ field: DoorsField) throws(PayloadProblem) {
        guard !string.utf8.contains(0) else { throw .containsNUL(field) }
    }

    static func path(_ path: String, _ field: DoorsField) throws(PayloadProblem) {
        guard path.utf8.first == UInt8(ascii: "/") else { throw .notAbsolute(field) }
        try noNUL(path, field)
    }

    /// "KEY=VALUE" with a non-empty KEY.
    static func environmentEntry(_ entry: String) throws(PayloadProblem) {
        try noNUL(entry, .env)
        guard let equals = entry.utf8.firstIndex(of: UInt8(ascii: "=")), equals != entry.utf8.startIndex else {
            throw .malformed(.env)
        }
    }

    static func entryName(_ name: String) throws(PayloadProblem) {
        guard !name.isEmpty else { throw .empty(.entryName) }
        try noNUL(name, .entryName)
        let utf8 = name.utf8
        guard !utf8.elementsEqual(".".utf8), !utf8.elementsEqual("..".utf8), !utf8.contains(UInt8(ascii: "/")) else {
            throw .malformed(.entryName)
        }
    }

    static func signal(_ signal: UInt8) throws(PayloadProblem) {
        guard (1...DoorsLimits.maxSignal).contains(signal) else { throw .outOfRange(.signal, Int64(signal)) }
    }

    static func permissions(_ permissions: UInt32) throws(PayloadProblem) {
        guard permissions <= DoorsLimits.maxPermissions else { throw .outOfRange(.permissions, Int64(permissions)) }
    }

    static func versions(_ versions: [UInt8]) throws(PayloadProblem) {
        guard !versions.isEmpty else { throw .empty(.versions) }
        guard versions.count <= DoorsLimits.maxVersions else {
            throw .countOverBound(.versions, count: versions.count, bound: DoorsLimits.maxVersions)
        }
        guard !versions.contains(0) else { throw .outOfRange(.versions, 0) }
    }

    static func helloMaxPayload(_ maxPayload: UInt32) throws(PayloadProblem) {
        guard maxPayload >= DoorsProtocol.minimumMaxPayload else { throw .outOfRange(.maxPayload, Int64(maxPayload)) }
    }

    /// Hello lives on the connection (id 0), Error on either; everything else on a request.
    static func requestID(_ id: UInt32, for type: FrameType) throws(PayloadProblem) {
        switch type {
        case .hello: guard id == 0 else { throw .requestIDMustBeZero(id) }
        case .error: break
        default: guard id != 0 else { throw .requestIDMustBeNonzero }
        }
    }
}
