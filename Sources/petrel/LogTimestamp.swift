#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SMTPProtocol

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
        InternetDate.rfc3339(secondsSince1970: Int64(seconds), milliseconds: milliseconds)
    }
}
