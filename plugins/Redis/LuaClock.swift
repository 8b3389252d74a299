/// The Redis server's clock for Lua scripts that keep times, so that every worker reads one clock:
/// prepend `functions` to a script and call `now_ms()` (milliseconds since 1970).
///
/// ```swift
/// static let script = RedisScript(LuaClock.functions + "\n" + """
///     local now = now_ms()
///     …
///     """)
/// ```
public enum LuaClock {
    public static let functions = """
        local function now_ms()
          local t = redis.call('TIME')
          return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end
        """
}
