import Foundation

/// Runs real programs (the built `quantd`, `zstd`, `python3`) the way a user would.
public enum Shell {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    @discardableResult
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil)
        -> Result
    {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch {
            return Result(status: -1, stdout: "", stderr: "cannot run \(executable): \(error)")
        }
        // Read both pipes while the process runs, so a chatty process cannot block on a full pipe.
        nonisolated(unsafe) var errData = Data()
        let reader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        while !reader.isFinished { usleep(1000) }
        return Result(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
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
