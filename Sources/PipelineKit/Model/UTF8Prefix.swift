extension StringProtocol {
    /// The longest start of the text that is at most `limit` bytes of UTF-8, cut between Unicode
    /// scalars. A bound on size, which `prefix(_:)` is not: it counts characters, and one character
    /// may hold any number of combining marks (`"t"` and 70,000 accents is one) — a reason that quotes
    /// input so becomes a header too big for a frame.
    ///
    /// ```swift
    /// properties.headers["x-error"] = .string(reason.prefix(utf8Bytes: 2000))
    /// ```
    public func prefix(utf8Bytes limit: Int) -> String {
        guard utf8.count > limit else { return String(self) }
        var kept = String()
        var bytes = 0
        for scalar in unicodeScalars {
            bytes += UTF8.width(scalar)
            guard bytes <= limit else { break }
            kept.unicodeScalars.append(scalar)
        }
        return kept
    }
}
