/// The value formats of the configuration file.
public enum ValueFormats {
    /// `30s`, `5m`, `4h`, `5d`, or `0`: a duration in seconds.
    public static func parseDuration(_ text: String) -> Duration? {
        if text == "0" { return .zero }
        guard let unit = text.last, let number = Int64(text.dropLast()), number >= 0 else { return nil }
        let seconds: Int64
        switch unit {
        case "s": seconds = number
        case "m": seconds = number * 60
        case "h": seconds = number * 3600
        case "d": seconds = number * 86400
        default: return nil
        }
        return .seconds(seconds)
    }

    /// `1000`, `512KB`, `25MB`: octets, with KB = 1024 and MB = 1024².
    public static func parseSize(_ text: String) -> Int? {
        let multiplier: Int
        var digits = Substring(text)
        if text.hasSuffix("MB") {
            multiplier = 1024 * 1024
            digits = digits.dropLast(2)
        } else if text.hasSuffix("KB") {
            multiplier = 1024
            digits = digits.dropLast(2)
        } else {
            multiplier = 1
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(digits),
              value <= Int.max / multiplier else { return nil }
        return value * multiplier
    }

    /// Formats a duration the way the file writes it.
    public static func format(_ duration: Duration) -> String {
        let seconds = duration.components.seconds
        if seconds == 0 { return "0" }
        if seconds % 86400 == 0 { return "\(seconds / 86400)d" }
        if seconds % 3600 == 0 { return "\(seconds / 3600)h" }
        if seconds % 60 == 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }

    /// Formats a size the way the file writes it: `25MB`, `512KB`, or octets.
    public static func format(size: Int) -> String {
        if size > 0, size % (1024 * 1024) == 0 { return "\(size / (1024 * 1024))MB" }
        if size > 0, size % 1024 == 0 { return "\(size / 1024)KB" }
        return "\(size)"
    }
}
