import Metrics

extension Counter {
    /// Messages acknowledged because their key was already completed.
    static let duplicates = Counter(label: "outbound_duplicates_total")
    /// Keys taken over from a worker whose lease had expired.
    static let takeovers = Counter(label: "outbound_idempotency_takeovers_total")
    /// Completions that found another worker's claim: the message was probably sent twice.
    static let suspectedDoubleSends = Counter(label: "outbound_suspected_double_sends_total")

    /// Claims whose answer was lost, released by their own worker so another worker's retry can claim them.
    static let lostClaimsReleased = Counter(label: "outbound_idempotency_lost_claims_released_total")

    /// Makes the series exist at 0 from the start: an alert on `increase` sees the first event only
    /// if the series was scraped before it.
    static func registerIdempotencySeries() {
        _ = (duplicates, takeovers, suspectedDoubleSends, lostClaimsReleased)
    }
}
