import Glibc
import QuantEngine
import Testing
import TestSupport

/// "Is out/NAME the output of this input?": what the daemon asks after a crash between a commit and the move of
/// its input to done/.
@Suite("Manifest.isOutput(of:)")
struct ManifestOwnershipTests {
    @Test func theOutputOfAFileIsItsOwnAndNoOtherFiles() throws {
        let s = try Setup(mixedCheckpoint(seed: 11))
        defer { s.dir.remove() }
        let manifest = try Engine.quantize(input: s.input, output: s.output, options: QuantizeOptions())
        #expect(manifest.isOutput(of: s.input))
        #expect(try Manifest.read(folder: s.output).isOutput(of: s.input), "as read back from disk")

        try mixedCheckpoint(seed: 12).write(to: s.dir["other.safetensors"])
        #expect(!manifest.isOutput(of: s.dir["other.safetensors"]), "same size, other bytes")
        var bytes = try TempDir.read(s.input)
        bytes[bytes.count - 1] ^= 1
        try TempDir.write(bytes, to: s.dir["flipped.safetensors"])
        #expect(!manifest.isOutput(of: s.dir["flipped.safetensors"]), "one bit changed")
        try TempDir.write(bytes + [0], to: s.dir["longer.safetensors"])
        #expect(!manifest.isOutput(of: s.dir["longer.safetensors"]))
        #expect(!manifest.isOutput(of: s.dir["missing.safetensors"]))
        #expect(symlink(s.input, s.dir["link.safetensors"]) == 0)
        #expect(!manifest.isOutput(of: s.dir["link.safetensors"]), "a symlink is not followed")
        var empty = manifest
        empty.sources = []
        #expect(!empty.isOutput(of: s.input), "a manifest listing no source belongs to nothing")
    }

    @Test func theOutputOfAFolderListsEveryShard() throws {
        let dir = TempDir("quantd-owner")
        defer { dir.remove() }
        let folder = dir["model"]
        #expect(mkdir(folder, 0o755) == 0)
        var rng = SeededRandom(seed: 5)
        for shard in ["a", "b"] {
            var c = Checkpoint()
            c.addRandom("\(shard).weight", .F32, shape: [16, 256], rng: &rng)
            try c.write(to: folder + "/\(shard).safetensors")
        }
        let manifest = try Engine.quantize(input: folder, output: dir["out"], options: QuantizeOptions())
        #expect(manifest.sources.count == 2)
        #expect(manifest.isOutput(of: folder))
        #expect(!manifest.isOutput(of: folder + "/a.safetensors"), "one shard is not the folder")

        var outside = manifest
        #expect(link(folder + "/a.safetensors", dir["a.safetensors"]) == 0)
        outside.sources[0].file = "../a.safetensors"
        #expect(!outside.isOutput(of: folder), "a source outside the folder is never looked at")
        #expect(unlink(folder + "/b.safetensors") == 0)
        #expect(!manifest.isOutput(of: folder), "a shard missing")
    }
}
