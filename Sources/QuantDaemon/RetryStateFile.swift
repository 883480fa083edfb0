import QuantSystem
/// `RetryState` on disk: read once at start, written whenever the backoffs change (through a temporary file
/// and a rename), removed when none is left.
struct RetryStateFile {
    let path: String
    /// What the file holds now; nil when unknown (a failed write): written again at the next save.
    private var saved: [String: Admission.Backoff]? = [:]

    init(path: String) { self.path = path }

    /// The backoffs written before a restart, on the monotonic clock at `now`; nil without a file. A file that
    /// cannot be read or decoded is removed, and what is wrong with it returned.
    mutating func load(now: Double, unixNow: Double, maxWait: Double) -> Result<RetryState, RetryState.Corrupt>? {
        guard FS.exists(path) else { return nil }
        let result: Result<RetryState, RetryState.Corrupt>
        do {
            let bytes = try FS.readFile(path, limit: 16 << 20)
            result = Result { () throws(RetryState.Corrupt) in
                try RetryState.decode(bytes, now: now, unixNow: unixNow, maxWait: maxWait)
            }
        } catch {
            result = .failure(RetryState.Corrupt(description: error.description))
        }
        switch result {
        case .success(let state): saved = state.backoffs
        case .failure: try? FS.removeTree(path)
        }
        return result
    }

    /// Writes `backoffs` if they differ from what the file holds; removes the file when they are empty.
    mutating func save(_ backoffs: [String: Admission.Backoff], now: Double, unixNow: Double) throws(SystemError) {
        guard backoffs != saved else { return }
        saved = nil
        if backoffs.isEmpty {
            if FS.exists(path) { try FS.removeTree(path) }
        } else {
            try FS.writeAtomically(RetryState(backoffs: backoffs).encoded(now: now, unixNow: unixNow), to: path,
                                   temp: path + ".tmp")
        }
        saved = backoffs
    }
}
