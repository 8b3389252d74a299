/// Where a step that delivers a message leaves the id the receiving system gave it
/// (the Cloud API's `wamid`), for steps that record completion.
public enum DeliveryReceiptKey: MessageValueKey {
    public typealias Value = String
}
