/// Where a step that delivers a message leaves the id the receiving system gave it
/// (the Cloud API's `wamid`), for steps that record completion.
public enum DeliveryReceiptKey: MessageValueKey {
    public typealias Value = String
}

extension StepValue {
    /// The wamid of the send (`dispatch` leaves it; `mark_completed` needs it).
    public static let receipt = StepValue(DeliveryReceiptKey.self, "receipt")
}
