import Foundation

/// What a source reports besides deliveries.
public enum SourceEvent: Sendable {
    case delivery(Delivery)
    /// Connected (again) to `String` (a broker URL without its password, a listening address).
    case connected(String)
    case disconnected(String)
    /// After `stopIntake`: no delivery follows this event.
    case intakeStopped
}
