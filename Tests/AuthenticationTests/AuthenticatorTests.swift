import Foundation
import NIOConcurrencyHelpers
import NIOPosix
import PetrelTestSupport
import Testing
@testable import Authentication

/// Checking credentials, and throttling addresses that keep failing.
struct AuthenticatorTests {
    static let users: UsersFile = {
        UsersFile(users: [
            User(name: "app", passwordHash: try! PasswordHash.make("right"), allowedSenders: ["app@example.com"]),
            User(name: "other", passwordHash: try! PasswordHash.make("other-password")),
        ])
    }()

    @Test func acceptsTheRightPassword() async throws {
        let authenticator = Authenticator(users: Self.users)
        #expect(authenticator.hasUsers)
        let user = try await authenticator.authenticate(name: "app", password: "right", from: "192.0.2.1")
        #expect(user?.name == "app")
        #expect(user?.allowedSenders == ["app@example.com"])
    }

    @Test func refusesWrongPasswordsUnknownUsersAndOthersPasswords() async throws {
        let authenticator = Authenticator(users: Self.users)
        #expect(try await authenticator.authenticate(name: "app", password: "wrong", from: "192.0.2.1") == nil)
        #expect(try await authenticator.authenticate(name: "app", password: "", from: "192.0.2.1") == nil)
        #expect(try await authenticator.authenticate(name: "nobody", password: "right", from: "192.0.2.1") == nil)
        #expect(try await authenticator.authenticate(name: "app", password: "other-password", from: "192.0.2.1") == nil)
        #expect(try await authenticator.authenticate(name: "APP", password: "right", from: "192.0.2.1") == nil)
    }

    @Test func onlyTheNamesOfRealUsersMayBeLogged() {
        let authenticator = Authenticator(users: Self.users)
        #expect(authenticator.loggableName("app") == "app")
        #expect(authenticator.loggableName("hunter2") == nil)
        #expect(authenticator.loggableName("APP") == nil)
    }

    @Test func throttlesAnAddressAfterTooManyFailures() async throws {
        let authenticator = Authenticator(users: Self.users, maximumFailures: 3)
        for attempt in 1...3 {
            #expect(!authenticator.isThrottled("192.0.2.1"), "before failure \(attempt)")
            _ = try await authenticator.authenticate(name: "app", password: "wrong\(attempt)", from: "192.0.2.1")
        }
        #expect(authenticator.isThrottled("192.0.2.1"))
        // Unknown users count too (no way to probe for names).
        _ = try await authenticator.authenticate(name: "nobody", password: "x", from: "192.0.2.2")
        _ = try await authenticator.authenticate(name: "nobody", password: "x", from: "192.0.2.2")
        #expect(!authenticator.isThrottled("192.0.2.2"))
        _ = try await authenticator.authenticate(name: "nobody", password: "x", from: "192.0.2.2")
        #expect(authenticator.isThrottled("192.0.2.2"))
        // Other addresses are not affected.
        #expect(!authenticator.isThrottled("192.0.2.3"))
        #expect(try await authenticator.authenticate(name: "app", password: "right", from: "192.0.2.3")?.name == "app")
    }

    @Test func aSuccessClearsTheCount() async throws {
        let authenticator = Authenticator(users: Self.users, maximumFailures: 3)
        _ = try await authenticator.authenticate(name: "app", password: "wrong", from: "192.0.2.1")
        _ = try await authenticator.authenticate(name: "app", password: "wrong", from: "192.0.2.1")
        #expect(try await authenticator.authenticate(name: "app", password: "right", from: "192.0.2.1") != nil)
        _ = try await authenticator.authenticate(name: "app", password: "wrong", from: "192.0.2.1")
        _ = try await authenticator.authenticate(name: "app", password: "wrong", from: "192.0.2.1")
        #expect(!authenticator.isThrottled("192.0.2.1"))
    }

    @Test func theThrottleWearsOff() async throws {
        // The window runs from the first failure.
        let clock = TestClock()
        let window = Duration.seconds(600)
        let authenticator = Authenticator(users: Self.users, maximumFailures: 2, window: window, clock: clock)
        _ = try await authenticator.authenticate(name: "app", password: "wrong", from: "192.0.2.1")
        clock.advance(by: .seconds(10))
        _ = try await authenticator.authenticate(name: "app", password: "wrong", from: "192.0.2.1")
        #expect(authenticator.isThrottled("192.0.2.1"))
        clock.advance(by: window - .seconds(10))
        #expect(authenticator.isThrottled("192.0.2.1"), "the window's last instant")
        clock.advance(by: .milliseconds(1))
        #expect(!authenticator.isThrottled("192.0.2.1"))
        // A failure after the window starts a new count.
        _ = try await authenticator.authenticate(name: "app", password: "wrong", from: "192.0.2.1")
        #expect(!authenticator.isThrottled("192.0.2.1"))
    }

    @Test func reloadsUsers() async throws {
        let authenticator = Authenticator(users: UsersFile())
        #expect(!authenticator.hasUsers)
        #expect(try await authenticator.authenticate(name: "app", password: "right", from: "192.0.2.1") == nil)
        authenticator.update(users: Self.users)
        #expect(authenticator.hasUsers)
        #expect(try await authenticator.authenticate(name: "app", password: "right", from: "192.0.2.1")?.name == "app")
        authenticator.update(users: UsersFile(users: [User(name: "app", passwordHash: try PasswordHash.make("new"))]))
        #expect(try await authenticator.authenticate(name: "app", password: "right", from: "192.0.2.1") == nil)
        #expect(try await authenticator.authenticate(name: "app", password: "new", from: "192.0.2.1")?.name == "app")
    }
}

/// yescrypt on threads of its own, bounded in queue and wait (RFC 4954 §6: `454 4.7.0` when saturated).
struct PasswordHashPoolTests {
    /// Holds the pool's only thread until released.
    final class Blocker: Sendable {
        private let isReleased = NIOLockedValueBox(false)
        private let isRunning = NIOLockedValueBox(false)
        func block() {
            isRunning.withLockedValue { $0 = true }
            while !isReleased.withLockedValue({ $0 }) { usleep(1000) }
        }
        func release() { isReleased.withLockedValue { $0 = true } }
        var hasStarted: Bool { isRunning.withLockedValue { $0 } }
    }

    /// The pool's thread stays blocked until the spool write is done: were the hashes on the spool files'
    /// pool, the write would wait for it (and the test would run into its time limit). The bounds on time are
    /// loose, for a machine busy with other tests.
    @Test(.timeLimit(.minutes(1))) func aSaturatedPoolRefusesAtOnceAndSpoolIOGoesOn() async throws {
        let clock = TestClock()
        let pool = PasswordHashPool(numberOfThreads: 1, maximumWaiting: 1, maximumWait: .milliseconds(100), clock: clock)
        let authenticator = Authenticator(users: AuthenticatorTests.users, maximumFailures: 1, hashPool: pool)
        let blocker = Blocker()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run { blocker.block() } }
            while !blocker.hasStarted { try await Task.sleep(for: .milliseconds(5)) }
            // One check waits for the thread; it will have waited too long by the time it gets it.
            group.addTask {
                await #expect(throws: PasswordHashPool.Unavailable.self) {
                    try await authenticator.authenticate(name: "app", password: "right", from: "192.0.2.1")
                }
            }
            while pool.waitingChecks < 1 { try await Task.sleep(for: .milliseconds(5)) }
            // The queue is full: the extra AUTH is refused without waiting.
            var started = ContinuousClock.now
            await #expect(throws: PasswordHashPool.Unavailable.self) {
                try await authenticator.authenticate(name: "app", password: "right", from: "192.0.2.2")
            }
            #expect(ContinuousClock.now - started < .seconds(1))
            // The spool files' thread pool is not held up by the hashes.
            started = ContinuousClock.now
            let path = NSTemporaryDirectory() + "petrel-hash-pool-" + UUID().uuidString
            try await NIOThreadPool.singleton.runIfActive { try Data("text\r\n".utf8).write(to: URL(fileURLWithPath: path)) }
            try? FileManager.default.removeItem(atPath: path)
            #expect(ContinuousClock.now - started < .seconds(5))
            clock.advance(by: .milliseconds(150))  // the waiting check has now waited too long
            blocker.release()
            try await group.waitForAll()
        }
        // Refusals are not failures: neither address is throttled, and the pool works again.
        #expect(!authenticator.isThrottled("192.0.2.1") && !authenticator.isThrottled("192.0.2.2"))
        #expect(try await authenticator.authenticate(name: "app", password: "right", from: "192.0.2.1")?.name == "app")
        try await pool.shutdown()
    }
}
