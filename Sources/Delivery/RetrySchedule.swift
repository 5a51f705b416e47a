import SMTPProtocol

/// When to try a deferred recipient again: exponential backoff from `minimum`, doubling per attempt up
/// to `maximum`, with jitter so that recipients deferred together do not all come back at once (RFC 5321
/// §4.5.4.1: at least 30 minutes is advised between attempts to one destination; operators choose).
/// A pure function of the attempt count and a random draw, so it is tested without clocks.
public struct RetrySchedule: Sendable, Hashable {
    public var minimum: Duration
    public var maximum: Duration
    /// The delay varies by up to this fraction either way.
    public var jitter: Double

    public init(minimum: Duration, maximum: Duration, jitter: Double = 0.1) {
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
        self.jitter = jitter
    }

    /// The delay after the `attempts`-th failed attempt (1 for the first), with `random` in `0..<1`.
    public func delay(afterAttempts attempts: Int, random: Double) -> Duration {
        let exponent = min(max(attempts - 1, 0), 30)
        let minimumSeconds = minimum.inSeconds
        let maximumSeconds = maximum.inSeconds
        let base = min(minimumSeconds * Double(1 << exponent), maximumSeconds)
        let factor = 1 + jitter * (2 * random - 1)
        let seconds = min(max(base * factor, minimumSeconds * (1 - jitter)), maximumSeconds)
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    public func delay(afterAttempts attempts: Int) -> Duration {
        delay(afterAttempts: attempts, random: Double.random(in: 0..<1))
    }
}
