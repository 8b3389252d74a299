import Crypto
import Foundation

/// Where small per-wamid state lives in Redis (SPEC 17): not one key per wamid, but a field in one
/// of `buckets` hashes, so that Redis keeps each bucket as a compact listpack (up to
/// `hash-max-listpack-entries`, 128 by default) instead of paying a key, its table entries and
/// its expiry for every wamid.
///
/// A wamid's place is its SHA-256: bytes 0–7 (base64url, 11 characters) are the field, bytes 8–11
/// pick the bucket `{prefix}:{n}` (the braces make `n` the key's Redis Cluster hash tag). Each
/// field's value starts with the minute it expires (`29411535:…`): expired fields are pruned as
/// their bucket is written (the whole bucket every 32nd new field up to 256 fields; beyond, 8
/// random fields at each new one, so a command stays short), and a bucket expires with its last field.
///
///     let place = WamidBuckets(prefix: "wamids", count: 1024).place(of: "wamid.HBgL…")
///     // place.key == "wamids:{731}", place.field == "q3H0aJ3_Kcw"
public struct WamidBuckets: Sendable, Equatable {
    public var prefix: String
    public var count: Int

    public init(prefix: String, count: Int) {
        self.prefix = prefix
        self.count = max(1, count)
    }

    /// The bucket key and field of a wamid.
    public func place(of wamid: String) -> (key: String, field: String) {
        let digest = Array(SHA256.hash(data: Array(wamid.utf8)))
        let field = Self.base64URL(Data(digest[0..<8]).base64EncodedString())
        let pick = digest[8..<12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return ("\(prefix):{\(Int(pick) % count)}", field)
    }

    /// Base64 made URL-safe and unpadded in one pass over its bytes (Foundation's
    /// `replacingOccurrences`, three times, was 2 % of the worker's CPU per message).
    private static func base64URL(_ base64: String) -> String {
        var bytes = Array(base64.utf8)
        bytes.removeAll { $0 == UInt8(ascii: "=") }
        for index in bytes.indices {
            if bytes[index] == UInt8(ascii: "+") { bytes[index] = UInt8(ascii: "-") } else if bytes[index] == UInt8(ascii: "/") { bytes[index] = UInt8(ascii: "_") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Lua helpers shared by the scripts that use buckets: `bucket_get(key, field, now)` returns a
    /// live field's value without its expiry (nil when absent or expired); `bucket_put(key, field,
    /// value, expires, now)` writes it to expire at `expires` (Unix seconds), extends the bucket's
    /// own expiry to cover it, and now and then prunes the bucket's expired fields.
    /// `mapping_put(key, field, send, expires, now)` and `mapping_get(key, field, now)` do the same
    /// for a wamid mapping (`MappedSend.stored`): a send's trace goes in a field of its own
    /// (`{field}.t`, the `traceparent` without its version), so that no value is longer than
    /// Redis keeps in a listpack (`hash-max-listpack-value`, 64 bytes by default — the whole
    /// bucket would become a hash table for one traced send); `mapping_get` joins them again when
    /// both were written together (the same minute).
    public static let luaFunctions = """
        local function bucket_live(stored, now)
          local colon = stored and string.find(stored, ':', 1, true)
          local minute = colon and tonumber(string.sub(stored, 1, colon - 1))
          if not minute or minute * 60 <= now then return nil end
          return string.sub(stored, colon + 1)
        end
        local function bucket_get(key, field, now)
          return bucket_live(redis.call('HGET', key, field), now)
        end
        local function bucket_put(key, field, value, expires, now)
          local minute = math.ceil(expires / 60)
          local added = redis.call('HSET', key, field, minute .. ':' .. value)
          local ttl = redis.call('TTL', key)
          if ttl < 0 or now + ttl < minute * 60 then redis.call('EXPIREAT', key, minute * 60) end
          if added == 1 then
            local size = redis.call('HLEN', key)
            local sample
            if size <= 256 then
              if size % 32 == 0 then sample = redis.call('HGETALL', key) end
            else
              -- An overfull bucket (too few buckets for the volume) is sampled, never read whole.
              sample = redis.call('HRANDFIELD', key, 8, 'WITHVALUES')
            end
            for i = 1, #(sample or {}), 2 do
              if not bucket_live(sample[i + 1], now) then redis.call('HDEL', key, sample[i]) end
            end
          end
        end
        local function mapping_put(key, field, send, expires, now)
          local id, trace = string.match(send, '^(.*) 00%-(%x+%-%x+%-%x%x)$')
          if not id or #trace ~= 52 then return bucket_put(key, field, send, expires, now) end
          bucket_put(key, field, id, expires, now)
          bucket_put(key, field .. '.t', trace, expires, now)
        end
        local function mapping_get(key, field, now)
          local stored = redis.call('HGET', key, field)
          local id = bucket_live(stored, now)
          if not id then return nil end
          -- A trace goes with the id written with it (the same minute), not with one written over it in a later minute.
          local minute = string.sub(stored, 1, #stored - #id)
          local trace = redis.call('HGET', key, field .. '.t')
          if trace and string.sub(trace, 1, #minute) == minute then return id .. ' 00-' .. string.sub(trace, #minute + 1) end
          return id
        end
        local function redis_now()
          local t = redis.call('TIME')
          return tonumber(t[1])
        end
        """
}
