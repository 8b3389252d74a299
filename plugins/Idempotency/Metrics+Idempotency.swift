import Metrics

extension Counter {
    /// Messages acknowledged because their key was already completed.
    static let duplicates = Counter(label: "outbound_duplicates_total")
}
