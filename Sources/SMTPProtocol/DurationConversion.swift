/// The one conversion of a `Duration` to the numbers other APIs take (`Date.addingTimeInterval`, metrics,
/// SQLite's Unix milliseconds), fractions kept.
extension Duration {
    /// Seconds with their fraction, as a `TimeInterval` (a `Double`).
    public var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// Whole nanoseconds, the fraction below one dropped.
    public var inNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
