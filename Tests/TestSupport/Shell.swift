import Foundation

/// Runs real programs (the built `quantd`, `zstd`, `python3`, scripts) the way a user would.
public enum Shell {
    public struct Result: Sendable {
        public var status: Int32
        /// Standard output as it came, bytes (`zstd -c` writes binary).
        public var output: [UInt8]
        public var stderr: String
        /// Standard output as text.
        public var stdout: String { String(decoding: output, as: UTF8.self) }
    }

    /// Runs `executable` to its end with an empty standard input. Its output goes through files, so that a large
    /// one cannot block it. Status -1 (and the reason in `stderr`) when it cannot be started.
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil)
        -> Result
    {
        let folder = TempDir("quantd-run")
        defer { folder.remove() }
        let process: Process
        do {
            process = try start(executable, arguments, environment: environment, stdout: folder["stdout"],
                                stderr: folder["stderr"])
        } catch {
            return Result(status: -1, output: [], stderr: "cannot run \(executable): \(error)")
        }
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: (try? TempDir.read(folder["stdout"])) ?? [],
                      stderr: String(decoding: (try? TempDir.read(folder["stderr"])) ?? [], as: UTF8.self))
    }

    /// Starts `executable` with an empty standard input and its output into the files named (nothing kept where
    /// nil), and returns it running.
    static func start(_ executable: String, _ arguments: [String], environment: [String: String]?,
                      stdout: String?, stderr: String?) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try stdout.map(handle) ?? FileHandle.nullDevice
        process.standardError = try stderr.map(handle) ?? FileHandle.nullDevice
        try process.run()
        return process
    }

    /// A new, empty file at `path`, open for writing.
    private static func handle(_ path: String) throws -> FileHandle {
        try TempDir.write([], to: path)
        guard let handle = FileHandle(forWritingAtPath: path) else { throw TestError("cannot open \(path)") }
        return handle
    }

    /// The path of a program on PATH, if any.
    public static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// A Python that has torch, transformers and compressed-tensors: $QUANTD_INTEROP_PYTHON (`.ci/run` makes one
    /// with scripts/interop/venv.sh), else `python3` if it has them; nil when none does.
    public static let interopPython: String? = {
        let candidates = [ProcessInfo.processInfo.environment["QUANTD_INTEROP_PYTHON"], which("python3")]
        return candidates.compactMap { $0 }.first {
            run($0, ["-c", "import torch, transformers, compressed_tensors"]).status == 0
        }
    }()

    /// Whether `python3` can import these modules.
    public static func python(has modules: [String]) -> Bool {
        guard let py = which("python3") else { return false }
        return run(py, ["-c", "import " + modules.joined(separator: ", ")]).status == 0
    }
}

/// Paths the tests share.
public enum Paths {
    /// The package root, found from this file's location.
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The real MiniLM checkpoint beside the clone, when `../shared` is there.
    public static let minilm = root + "/../shared/fixtures/minilm/model.safetensors"
    public static var hasMiniLM: Bool { FileManager.default.fileExists(atPath: minilm) }
    /// The fixture as a model folder (config, tokenizer, modules.json, 1_Pooling/).
    public static let minilmFolder = root + "/../shared/fixtures/minilm"

    /// The built `quantd` binary: $QUANTD_BIN, or the one beside the test bundle.
    public static let quantd: String = {
        if let p = ProcessInfo.processInfo.environment["QUANTD_BIN"] { return p }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent("quantd").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return root + "/.build/debug/quantd"
    }()
}
