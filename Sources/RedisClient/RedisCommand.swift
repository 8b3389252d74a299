import CHiredis

/// A command's arguments laid out once, back to back in one buffer, as hiredis's
/// `redisAppendCommandArgv` takes them: two allocations a command, made on the caller's
/// thread (on a cluster, after one copy per argument for routing), instead of one for each
/// argument and again for each argument's C copy.
struct RedisCommand: Sendable {
    /// Every argument's bytes in order, and one byte more, so the buffer always has an address.
    private var bytes: [UInt8]
    private var lengths: [Int]

    /// A command given as byte strings (binary-safe): `[[UInt8]]`, or text as `strings.map(\.utf8)`.
    init(_ arguments: [some Collection<UInt8>]) {
        lengths = arguments.map(\.count)
        bytes = []
        bytes.reserveCapacity(lengths.reduce(1, +))
        for argument in arguments { bytes.append(contentsOf: argument) }
        bytes.append(0)
    }

    /// No arguments at all: Redis answers nothing to it.
    var isEmpty: Bool { lengths.isEmpty }

    /// Appends the command to `context`'s output buffer (written with the next reply read).
    func append(to context: UnsafeMutablePointer<redisContext>) -> Int32 {
        bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { characters in
                withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: max(lengths.count, 1)) { argv in
                    var start = characters.baseAddress
                    for (index, length) in lengths.enumerated() {
                        argv[index] = start.map { UnsafePointer($0) }
                        start = start.map { $0 + length }
                    }
                    return lengths.withUnsafeBufferPointer { argvlen in
                        redisAppendCommandArgv(context, Int32(lengths.count), argv.baseAddress, argvlen.baseAddress)
                    }
                }
            }
        }
    }
}
