import QuantSystem
/// What in incoming/ is refused before it is opened, and why: the entry goes to failed/ with the reason in its
/// record. No I/O: the loop passes what `lstat` said and, for a folder, how many entries it holds.
enum Intake {
    struct Refusal: Equatable {
        /// The record's `kind`.
        var kind: String
        var reason: String
    }

    /// Refused at first sight: not a file or folder, a name too long to claim, a folder too large.
    /// `folderEntries` is asked only of a folder whose name fits (it lists up to `maxFolderEntries + 1` names).
    static func refusal(name: String, kind: Entry.Kind, maxNameBytes: Int, instance: String, maxFolderEntries: Int,
                        folderEntries: () -> Int?) -> Refusal? {
        switch kind {
        case .file, .directory: break
        default:
            return Refusal(kind: "notRegular",
                           reason: "a \(kind.rawValue) is not a checkpoint; it was not opened or followed")
        }
        if name.utf8.count > maxNameBytes {
            return Refusal(kind: "nameTooLong",
                           reason: "the name is \(name.utf8.count) bytes; with instance '\(instance)' names of at "
                            + "most \(maxNameBytes) bytes fit the claim, staging and record names (255 bytes each)")
        }
        if kind == .directory, let count = folderEntries(), count > maxFolderEntries {
            return Refusal(kind: "tooManyEntries",
                           reason: "the folder holds more than \(maxFolderEntries) entries (limits.max_folder_entries)")
        }
        return nil
    }

    /// Refused once ready (a file still being written may yet be renamed): a file not named `*.safetensors`.
    static func refusalWhenReady(name: String, kind: Entry.Kind) -> Refusal? {
        guard kind == .file && !name.hasSuffix(".safetensors") else { return nil }
        return Refusal(kind: "notSafetensors",
                       reason: "a file must be named *.safetensors (or be a folder of shards)")
    }
}
