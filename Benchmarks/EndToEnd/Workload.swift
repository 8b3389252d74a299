import AMQPClient
import Foundation

/// The messages of one run: five types, every tenth a duplicate of an earlier id.
/// Recipients are `+55119` and an 8-digit number, which the stand-in reads back.
struct Workload {
    var bodies: [[UInt8]] = []
    var numbers: [Int] = []
    /// Distinct ids: the requests the stand-in must see.
    var unique = 0

    init(count: Int, prefix: String, firstNumber: Int) {
        bodies.reserveCapacity(count)
        numbers.reserveCapacity(count)
        for index in 0..<count {
            let number: Int
            if index % 10 == 9, unique > 0 {
                number = firstNumber + (index * 7919) % unique
            } else {
                number = firstNumber + unique
                unique += 1
            }
            bodies.append(Array(Self.body(number: number, id: "\(prefix)-\(number)").utf8))
            numbers.append(number)
        }
    }

    private static func body(number: Int, id: String) -> String {
        let to = "+55119\(String(format: "%08d", number))"
        switch number % 5 {
        case 0: return #"{"internalId":"\#(id)","to":"\#(to)","type":"text","text":{"body":"Your order \#(number) has shipped"},"metadata":{"n":\#(number)}}"#
        case 1: return #"{"internalId":"\#(id)","to":"\#(to)","type":"template","template":{"name":"order_update","language":"en_US","components":[{"type":"body","parameters":[{"type":"text","text":"\#(number)"}]}]}}"#
        case 2: return #"{"internalId":"\#(id)","to":"\#(to)","type":"image","media":{"link":"https://example.com/\#(number).png","caption":"Receipt"}}"#
        case 3: return #"{"internalId":"\#(id)","to":"\#(to)","type":"location","location":{"latitude":-23.55,"longitude":-46.63,"name":"Store"}}"#
        default: return #"{"internalId":"\#(id)","to":"\#(to)","type":"interactive","interactive":{"type":"button","body":{"text":"Confirm?"},"action":{"buttons":[{"type":"reply","reply":{"id":"y","title":"Yes"}}]}}}"#
        }
    }
}

/// Publishes with confirms, 1,000 in flight at a time.
func publish(_ bodies: ArraySlice<[UInt8]>, to queue: String, _ publisher: AMQPPublisher) async throws {
    for start in stride(from: bodies.startIndex, to: bodies.endIndex, by: 1000) {
        let slice = bodies[start..<min(start + 1000, bodies.endIndex)]
        try await withThrowingTaskGroup(of: Void.self) { group in
            for body in slice { group.addTask { try await publisher.publish(routingKey: queue, body: body, properties: .persistentJSON) } }
            try await group.waitForAll()
        }
    }
}
