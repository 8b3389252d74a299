/// Meta's message categories (SPEC 4, `category`): what opt-outs and per-user marketing limits apply to.
public enum MessageCategory: String, Sendable, CaseIterable, Hashable {
    case marketing, utility, authentication, service
}
