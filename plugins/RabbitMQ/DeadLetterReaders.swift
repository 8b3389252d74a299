import AMQPClient
import Foundation

/// One reader of `{queue}.dead` at a time. `replay` and `status` read it by holding each letter
/// unacknowledged until they end, so a second reader meanwhile did not see the letters the first
/// held — a replay that moved fewer than matched, a `status` that found no copy — and said
/// nothing. Each takes an exclusive queue `{queue}.dead.reader` (the broker deletes it when the
/// reader's connection goes), waiting up to `patience` for another to end. A user the broker does
/// not let declare it reads without it.
public enum DeadLetterReaders {
    /// Another reader held `.dead` for all of `patience`.
    public struct Busy: Error, CustomStringConvertible {
        public var deadQueue: String
        public var description: String {
            "another replay or status is reading `\(deadQueue)` (it holds each letter it reads until it ends); run this again once it has"
        }
    }

    static let patience = Duration.seconds(10)

    /// The exclusive queue that stands for the lock of `deadQueue`.
    public static func lockName(of deadQueue: String) -> String { "\(deadQueue).reader" }

    /// Takes the lock for as long as `session` lasts.
    static func lock(_ deadQueue: String, in session: AMQPTransferSession, patience: Duration = patience) throws {
        let deadline = ContinuousClock.now + patience
        while true {
            let attempt = Result { () throws(AMQPError) in try session.lock(lockName(of: deadQueue)) }
            guard case .failure(let error) = attempt else { return }
            switch error {
            case .broker(403, _): return
            case .broker(405, _) where ContinuousClock.now < deadline: Thread.sleep(forTimeInterval: 0.2)
            case .broker(405, _): throw Busy(deadQueue: deadQueue)
            default: throw error
            }
        }
    }
}
