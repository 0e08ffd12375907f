import Foundation
import Logging
import PayBridge
import Synchronization

/// Where logs and the live status line go: standard error, one writer at a time, so a log
/// line never lands in the middle of the status line (which is redrawn after it).
final class Terminal: Sendable {
    static let shared = Terminal()

    /// Whether standard error is a terminal (only then is there a status line).
    let isInteractive = isatty(STDERR_FILENO) == 1

    /// Whether standard output and standard error are different files (not one terminal,
    /// not `2>&1`).
    static let outputIsSeparate: Bool = {
        var output = stat()
        var error = stat()
        guard fstat(STDOUT_FILENO, &output) == 0, fstat(STDERR_FILENO, &error) == 0 else { return true }
        return output.st_dev != error.st_dev || output.st_ino != error.st_ino
    }()
    private let status = Mutex<String?>(nil)

    func write(line: String) {
        status.withLock { status in
            var text = ""
            if status != nil { text += "\r\u{1B}[2K" }
            text += line + "\n"
            if let status { text += status }
            FileHandle.standardError.write(Data(text.utf8))
        }
    }

    /// A line on standard output (a console endpoint's), below the status line's place.
    func output(line: String) {
        status.withLock { status in
            if status != nil { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
            if let status { FileHandle.standardError.write(Data(status.utf8)) }
        }
    }

    /// Replaces the status line (nil removes it).
    func show(status line: String?) {
        guard isInteractive else { return }
        status.withLock { status in
            status = line
            FileHandle.standardError.write(Data(("\r\u{1B}[2K" + (line ?? "")).utf8))
        }
    }
}

/// `2026-12-01T21:00:00.123Z warning endpoint failing endpoint=erp failingSince=…`: the
/// message first, then the metadata sorted by key.
struct TextLogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(metadataProvider?.get() ?? [:]) { $1 }.merging(event.metadata ?? [:]) { $1 }
        // One entry, one line: what a receiver or the bank sent back (a body with newlines or
        // terminal escapes) is written escaped, never as lines or colours of its own.
        var line = "\(Timestamp.iso8601(Date())) \(event.level.rawValue) \(event.message.description.oneLine)"
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            let text = "\(value)".oneLine
            line += " \(key)=" + (text.contains(" ") || text.isEmpty ? "\"\(text.replacingOccurrences(of: "\"", with: "\\\""))\"" : text)
        }
        Terminal.shared.write(line: line)
    }
}

/// One JSON object a line: `{"time":…,"level":…,"message":…,"endpoint":…}`.
struct JSONLogHandler: LogHandler {
    /// Set when logs are JSON: `printError` writes its lines as JSON too.
    static let everyLine = Atomic(false)

    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(metadataProvider?.get() ?? [:]) { $1 }.merging(event.metadata ?? [:]) { $1 }
        var members = Self.members(level: event.level, message: "\(event.message)")
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) where !["time", "level", "message"].contains(key) {
            members.append((key, Self.json(value)))
        }
        Terminal.shared.write(line: String(decoding: JSONValue.object(members).bytes, as: UTF8.self))
    }

    /// A line without metadata, as `log` writes it.
    static func line(level: Logger.Level, message: String, metadata: Logger.Metadata = [:]) -> String {
        let fields = metadata.sorted { $0.key < $1.key }.map { ($0.key, json($0.value)) }
        return String(decoding: JSONValue.object(members(level: level, message: message) + fields).bytes, as: UTF8.self)
    }

    /// The members every line starts with.
    private static func members(level: Logger.Level, message: String) -> [(key: String, value: JSONValue)] {
        [("time", .string(Timestamp.iso8601(Date()))), ("level", .string(level.rawValue)), ("message", .string(message))]
    }

    static func json(_ value: Logger.MetadataValue) -> JSONValue {
        switch value {
        case .string(let text): return .string(text)
        // Counts and ids logged as numbers stay numbers: `"changed":0`, not `"changed":"0"`.
        case .stringConvertible(let value as any BinaryInteger): return .number("\(value)")
        case .stringConvertible(let value as Double) where value.isFinite: return .number("\(value)")
        case .stringConvertible(let value as Bool): return .bool(value)
        case .stringConvertible(let value): return .string(value.description)
        case .array(let items): return .array(items.map(json))
        case .dictionary(let dictionary): return .object(dictionary.sorted { $0.key < $1.key }.map { ($0.key, json($0.value)) })
        }
    }
}
