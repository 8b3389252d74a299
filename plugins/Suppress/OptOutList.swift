import PipelineKit
import RedisPlugin

/// The opt-out lists (SPEC 16) in a key-value store: one set of `+digits` numbers per sender
/// phone number id (`optout:sender:{id}`) and one for every sender (`optout:all`).
public struct OptOutList: Sendable {
    public let store: any KeyValueStore
    /// What every list's key starts with.
    public let prefix: String

    public init(store: any KeyValueStore, prefix: String = "optout:") {
        self.store = store
        self.prefix = prefix
    }

    /// The key of a sender's list; nil: the list for all senders.
    public func key(sender: String?) -> String {
        sender.map { "\(prefix)sender:\($0)" } ?? "\(prefix)all"
    }

    /// Adds `number` to the list of `sender` (nil: all senders); whether it was not on it yet.
    public func add(_ number: String, sender: String?) async throws(StoreUnavailable) -> Bool {
        try await store.addMembers([number], to: key(sender: sender)) == 1
    }

    /// Removes `number`, in each of its forms (`PhoneNumberForms`), from the list of `sender` (nil:
    /// all senders); the forms that were on it (to put back exactly those). A writer's START takes
    /// them off whichever form they were listed by.
    public func remove(_ number: String, sender: String?) async throws(StoreUnavailable) -> [String] {
        var removed: [String] = []
        for form in PhoneNumberForms.of(number) where try await store.removeMembers([form], from: key(sender: sender)) == 1 {
            removed.append(form)
        }
        return removed
    }

    /// Takes back a `remove`: puts back exactly the forms it took off.
    public func putBack(_ forms: [String], sender: String?) async throws(StoreUnavailable) {
        try await store.addMembers(forms, to: key(sender: sender))
    }

    /// Takes back an `add` of `number`: that form only (another form may have been listed before).
    public func takeBackAddition(of number: String, sender: String?) async throws(StoreUnavailable) {
        try await store.removeMembers([number], from: key(sender: sender))
    }

    /// The list that holds `number`, in any of its forms (`PhoneNumberForms`), for a message from
    /// `sender`: the sender's own, else the one for all senders; nil when neither does. One round trip.
    public func listing(_ number: String, sender: String?) async throws(StoreUnavailable) -> Listing? {
        let keys = [sender.map { key(sender: $0) }, key(sender: nil)].compactMap { $0 }
        let found = try await store.holdsAny(of: PhoneNumberForms.of(number), ofEach: keys)
        if sender != nil, found.first == true { return .sender }
        return found.last == true ? .allSenders : nil
    }

    /// The numbers on the list of `sender` (nil: all senders), sorted.
    public func numbers(sender: String?) async throws(StoreUnavailable) -> [String] {
        try await store.members(of: key(sender: sender))
    }

    /// Which list a number was found on.
    public enum Listing: String, Sendable {
        case sender
        case allSenders = "all senders"
    }
}
