#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The wall-clock time of a log line, written as RFC 3339 in UTC with milliseconds
/// (`2025-03-01T09:15:02.517Z`) without a formatter object per line.
struct LogTimestamp {
    var seconds: Int
    var milliseconds: Int

    static func now() -> LogTimestamp {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return LogTimestamp(seconds: Int(time.tv_sec), milliseconds: Int(time.tv_nsec) / 1_000_000)
    }

    var rfc3339: String {
        var clock = time_t(seconds)
        var parts = tm()
        gmtime_r(&clock, &parts)
        var text = ""
        text.reserveCapacity(24)
        Self.append(Int(parts.tm_year) + 1900, digits: 4, to: &text)
        text.append("-")
        Self.append(Int(parts.tm_mon) + 1, digits: 2, to: &text)
        text.append("-")
        Self.append(Int(parts.tm_mday), digits: 2, to: &text)
        text.append("T")
        Self.append(Int(parts.tm_hour), digits: 2, to: &text)
        text.append(":")
        Self.append(Int(parts.tm_min), digits: 2, to: &text)
        text.append(":")
        Self.append(Int(parts.tm_sec), digits: 2, to: &text)
        text.append(".")
        Self.append(milliseconds, digits: 3, to: &text)
        text.append("Z")
        return text
    }

    private static func append(_ value: Int, digits: Int, to text: inout String) {
        let decimal = String(value)
        if decimal.count < digits {
            text.append(String(repeating: "0", count: digits - decimal.count))
        }
        text.append(decimal)
    }
}
