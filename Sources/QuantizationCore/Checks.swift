/// Stops the program with `message` unless `condition` holds: the checks at the public edge of Quantization.
/// The kernel modules are built `-Ounchecked` in release, which does not evaluate `precondition` (so none is used
/// there); a `fatalError` behind an `if` stays, so these checks run in every build.
@inlinable @inline(__always)
package func check(
    _ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line
) {
    if !condition { fatalError(message(), file: file, line: line) }
}

/// `a * b`, or nil where it overflows (which `-Ounchecked` would let pass unseen).
package func product(_ a: Int, _ b: Int) -> Int? {
    let (p, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? nil : p
}
