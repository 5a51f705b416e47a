import NIOConcurrencyHelpers
import NIOPosix

/// Threads of their own for yescrypt, so that a burst of AUTH attempts (each hash costs milliseconds of CPU
/// by design) never holds up the spool files' reads and writes on NIO's shared thread pool.
///
/// Both the queue and the wait are bounded: at most ``maximumWaiting`` checks wait for a thread, and a
/// check that waited longer than ``maximumWait`` is not computed. Either way the check fails with
/// ``Unavailable``, which the server answers with `454 4.7.0` (RFC 4954 §6, temporary authentication
/// failure): the client may try again, and nothing counts against its address.
///
/// The pool owns its threads (an `NIOThreadPool`, no Swift tasks): ``shutdown()`` ends them. The server
/// uses ``shared``, whose threads live as long as the process.
public final class PasswordHashPool: Sendable {
    /// The pool is full (or stopped): the check was not made.
    public struct Unavailable: Error, CustomStringConvertible {
        public var description: String { "the password checks are saturated" }
    }

    /// Two threads, for at most 32 checks waiting up to two seconds each.
    public static let shared = PasswordHashPool()

    public let maximumWaiting: Int
    public let maximumWait: Duration
    private let threads: NIOThreadPool
    /// Checks submitted that no thread has taken yet.
    private let waiting = NIOLockedValueBox(0)
    /// The time on the injected clock, as the time since the pool was made.
    private let now: @Sendable () -> Duration

    /// - Parameter clock: measures how long a check waited; tests pass one they move by hand.
    public init(numberOfThreads: Int = 2, maximumWaiting: Int = 32, maximumWait: Duration = .seconds(2),
                clock: some Clock<Duration> = ContinuousClock()) {
        self.maximumWaiting = maximumWaiting
        self.maximumWait = maximumWait
        let origin = clock.now
        self.now = { origin.duration(to: clock.now) }
        self.threads = NIOThreadPool(numberOfThreads: numberOfThreads)
        threads.start()
    }

    /// Runs `work` on one of the pool's threads and returns its result. Throws ``Unavailable`` when
    /// ``maximumWaiting`` checks already wait, when this one waited longer than ``maximumWait``, or when
    /// the pool is shut down.
    public func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async throws -> T {
        let isAdmitted = waiting.withLockedValue { waiting in
            guard waiting < maximumWaiting else { return false }
            waiting += 1
            return true
        }
        guard isAdmitted else { throw Unavailable() }
        let now = self.now
        let submitted = now()
        let maximumWait = self.maximumWait
        let waiting = self.waiting
        let result: T?
        do {
            result = try await threads.runIfActive {
                waiting.withLockedValue { $0 -= 1 }
                guard now() - submitted <= maximumWait else { return nil }
                return work()
            }
        } catch {
            waiting.withLockedValue { $0 -= 1 }  // refused by a pool that is shut down: never taken
            throw Unavailable()
        }
        guard let result else { throw Unavailable() }
        return result
    }

    /// How many checks wait for a thread now.
    var waitingChecks: Int { waiting.withLockedValue { $0 } }

    /// Ends the threads once the checks under way are done.
    public func shutdown() async throws {
        try await threads.shutdownGracefully()
    }
}
