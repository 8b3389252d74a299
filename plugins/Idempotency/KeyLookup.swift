import Foundation
import PipelineKit

/// What an idempotency key says about one message (`outbound-worker status`).
public struct KeyLookup: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// No key: never seen in the last `ttl`, or released after a failure.
        case absent
        /// `since` as the key holds it; `startedAt` parsed from it.
        case processing(owner: String, since: String?, startedAt: Date?)
        /// `at` as the key holds it.
        case completed(wamid: String?, at: String?)
        /// Its send is in doubt (SPEC 13) since `since`, after delivery `attempt`.
        case inDoubt(owner: String, since: String?, startedAt: Date?, attempt: Int?)
        /// A value this worker did not write.
        case unreadable(String)
        /// Redis did not answer.
        case unavailable(String)
    }

    public var key: String
    public var state: State
    /// The key's remaining lifetime.
    public var ttl: Duration?

    /// Reads the key of `internalId` from `store` as the `idempotency` step with `settings` writes it.
    /// Throws when the key pattern needs a field other than `internalId`.
    public static func read(internalId: String, settings: Settings, store: any Resource) async throws -> KeyLookup {
        let template = settings[IdempotencySettings.key]
        guard let key = template.render({ $0 == "internalId" ? internalId : nil }) else {
            throw SettingsError(message: "key pattern \"\(template)\" uses fields besides {internalId}: a key cannot be found from an id alone")
        }
        guard let store = store as? any IdempotencyStore else { throw SettingsError(message: "the idempotency store is not a key store") }
        do {
            guard let (value, ttl) = try await store.read(key) else { return KeyLookup(key: key, state: .absent, ttl: nil) }
            guard let state = KeyState.decode(value) else { return KeyLookup(key: key, state: .unreadable(value), ttl: ttl) }
            if state.isCompleted {
                return KeyLookup(key: key, state: .completed(wamid: state.wamid, at: state.completed_at), ttl: ttl)
            }
            if state.isInDoubt {
                return KeyLookup(key: key, state: .inDoubt(owner: state.owner ?? "?", since: state.since, startedAt: state.sinceDate, attempt: state.attempt), ttl: ttl)
            }
            return KeyLookup(key: key, state: .processing(owner: state.owner ?? "?", since: state.since, startedAt: state.sinceDate), ttl: ttl)
        } catch {
            return KeyLookup(key: key, state: .unavailable(error.reason), ttl: nil)
        }
    }
}
