public import QuantSystem
import SystemPackage
import FoundationEssentials
import Logging
import SafeTensors
import Synchronization

/// Where log lines go: a file opened O_APPEND (reopened on SIGHUP, after logrotate moved it
/// away), or standard error for journald. Each line is written with one `write` call.
public final class LogSink: Sendable {
    private struct State {
        var descriptor: FileDescriptor
        var path: String?
    }

    private let state: Mutex<State>

    /// Opens `path` for appending, or uses standard error when `path` is nil.
    public init(path: String?) throws(SystemError) {
        state = Mutex(State(descriptor: try Self.open(path), path: path))
    }

    deinit {
        state.withLock { if $0.path != nil { try? $0.descriptor.close() } }
    }

    private static func open(_ path: String?) throws(SystemError) -> FileDescriptor {
        guard let path else { return .standardError }
        return try FileDescriptor.openFile(FilePath(path), .writeOnly, options: [.append, .create],
                                           permissions: [.ownerReadWrite, .groupRead])
    }

    /// The file currently written, nil for standard error.
    public var path: String? { state.withLock { $0.path } }

    /// Opens `path` anew (the same name after a rotation, or a new one after a reload) and
    /// closes the old descriptor. On failure the old descriptor stays in use.
    public func reopen(path: String?) throws(SystemError) {
        let descriptor = try Self.open(path)
        let old = state.withLock { state in
            let old = state
            state = State(descriptor: descriptor, path: path)
            return old
        }
        if old.path != nil { try? old.descriptor.close() }
    }

    /// Writes one line; a failure to log is dropped (there is nowhere else to say it).
    func write(line: String) {
        let bytes = Array((line + "\n").utf8)
        state.withLock { state in
            bytes.withUnsafeBytes { raw in _ = Result { () throws(SystemError) in
                try state.descriptor.writeFully(raw, path: nil)
            } }
        }
    }
}

/// A swift-log handler that writes one JSON object per line:
/// `{"time":…,"level":…,"event":<message>,"job":…,<metadata>…}`.
/// Numbers and booleans passed as `.stringConvertible` stay JSON numbers and booleans.
public struct JSONLinesLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let sink: LogSink

    public init(sink: LogSink, level: Logger.Level = .info) {
        self.sink = sink
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        sink.write(line: Self.render(event: event, context: metadata))
    }

    static func render(event: LogEvent, context: Logger.Metadata) -> String {
        var object = JSONObjectWriter()
        object.string("time", FS.timestamp())
        object.string("level", event.level.rawValue)
        object.string("event", event.message.description)
        let merged = context.merging(event.metadata ?? [:]) { _, new in new }
        // "job" first, the rest sorted: lines of one kind read alike.
        if let job = merged["job"] { object.raw("job", json(job)) }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) where key != "job" {
            object.raw(key, json(value))
        }
        return object.finish()
    }

    static func json(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let text):
            return JSONText.quoted(text)
        case .stringConvertible(let convertible):
            switch convertible {
            case let number as Int: return String(number)
            case let number as Int64: return String(number)
            case let number as UInt64: return String(number)
            case let number as Double: return JSONText.number(number)
            case let flag as Bool: return flag ? "true" : "false"
            default: return JSONText.quoted(convertible.description)
            }
        case .array(let values):
            return "[" + values.map(json).joined(separator: ",") + "]"
        case .dictionary(let entries):
            var object = JSONObjectWriter()
            for (key, value) in entries.sorted(by: { $0.key < $1.key }) { object.raw(key, json(value)) }
            return object.finish()
        }
    }
}

extension FS {
    /// Wall-clock time as RFC 3339 UTC with milliseconds, `2026-01-31T12:00:00.123Z`: the `time` of log lines,
    /// records and the lock's description.
    static func timestamp() -> String { Date.now.ISO8601Format(timestampStyle) }

    private static let timestampStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
}

/// Builds one JSON object as text, field by field, with `JSONText`'s escaping: any file name, however odd
/// (quotes, newlines, control characters, unicode), leaves the line valid JSON.
struct JSONObjectWriter {
    private(set) var text = "{"
    private var first = true

    mutating func key(_ key: String) {
        if !first { text += "," }
        first = false
        text += JSONText.quoted(key) + ":"
    }

    /// A field whose value is already JSON.
    mutating func raw(_ key: String, _ json: String) {
        self.key(key)
        text += json
    }

    mutating func string(_ key: String, _ value: String) { raw(key, JSONText.quoted(value)) }

    mutating func finish() -> String {
        text += "}"
        return text
    }
}
