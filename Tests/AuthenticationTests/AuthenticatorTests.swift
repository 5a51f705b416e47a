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

    @Test func acceptsTheRightPassword() async {
        let authenticator = Authenticator(users: Self.users)
        #expect(authenticator.hasUsers)
        let user = await authenticator.authenticate(name: "app", password: "right", from: "192.0.2.1")
        #expect(user?.name == "app")
        #expect(user?.allowedSenders == ["app@example.com"])
    }

    @Test func refusesWrongPasswordsUnknownUsersAndOthersPasswords() async {
        let authenticator = Authenticator(users: Self.users)
        #expect(await authenticator.authenticate(name: "app", password: "wrong", from: "192.0.2.1") == nil)
        #expect(await authenticator.authenticate(name: "app", password: "", from: "192.0.2.1") == nil)
        #expect(await authenticator.authenticate(name: "nobody", password: "right", from: "192.0.2.1") == nil)
        #expect(await authenticator.authenticate(name: "app", password: "other-password", from: "192.0.2.1") == nil)
        #expect(await authenticator.authenticate(name: "APP", password: "right", from: "192.0.2.1") == nil)
    }

    @Test func onlyTheNamesOfRealUsersMayBeLogged() {
        let authenticator = Authenticator(users: Self.users)
        #expect(authenticator.loggableName("app") == "app")
        #expect(authenticator.loggableName("hunter2") == nil)
        #expect(authenticator.loggableName("APP") == nil)
    }

    @Test func throttlesAnAddressAfterTooManyFailures() async {
        let authenticator = Authenticator(users: Self.users, maximumFailures: 3)
        for attempt in 1...3 {
            #expect(!authenticator.isThrottled("192.0.2.1"), "before failure \(attempt)")
            _ = await authenticator.authenticate(name: "app", password: "wrong\(attempt)", from: "192.0.2.1")
        }
        #expect(authenticator.isThrottled("192.0.2.1"))
        // Unknown users count too (no way to probe for names).
        _ = await authenticator.authenticate(name: "nobody", password: "x", from: "192.0.2.2")
        _ = await authenticator.authenticate(name: "nobody", password: "x", from: "192.0.2.2")
        #expect(!authenticator.isThrottled("192.0.2.2"))
        _ = await authenticator.authenticate(name: "nobody", password: "x", from: "192.0.2.2")
        #expect(authenticator.isThrottled("192.0.2.2"))
        // Other addresses are not affected.
        #expect(!authenticator.isThrottled("192.0.2.3"))
        #expect(await authenticator.authenticate(name: "app", password: "right", from: "192.0.2.3")?.name == "app")
    }

    @Test func aSuccessClearsTheCount() async {
        let authenticator = Authenticator(users: Self.users, maximumFailures: 3)
        _ = await authenticator.authenticate(name: "app", password: "wrong", from: "192.0.2.1")
        _ = await authenticator.authenticate(name: "app", password: "wrong", from: "192.0.2.1")
        #expect(await authenticator.authenticate(name: "app", password: "right", from: "192.0.2.1") != nil)
        _ = await authenticator.authenticate(name: "app", password: "wrong", from: "192.0.2.1")
        _ = await authenticator.authenticate(name: "app", password: "wrong", from: "192.0.2.1")
        #expect(!authenticator.isThrottled("192.0.2.1"))
    }

    @Test func theThrottleWearsOff() async throws {
        // The window runs from the first failure.
        let clock = TestClock()
        let window = Duration.seconds(600)
        let authenticator = Authenticator(users: Self.users, maximumFailures: 2, window: window, clock: clock)
        _ = await authenticator.authenticate(name: "app", password: "wrong", from: "192.0.2.1")
        clock.advance(by: .seconds(10))
        _ = await authenticator.authenticate(name: "app", password: "wrong", from: "192.0.2.1")
        #expect(authenticator.isThrottled("192.0.2.1"))
        clock.advance(by: window - .seconds(10))
        #expect(authenticator.isThrottled("192.0.2.1"), "the window's last instant")
        clock.advance(by: .milliseconds(1))
        #expect(!authenticator.isThrottled("192.0.2.1"))
        // A failure after the window starts a new count.
        _ = await authenticator.authenticate(name: "app", password: "wrong", from: "192.0.2.1")
        #expect(!authenticator.isThrottled("192.0.2.1"))
    }

    @Test func reloadsUsers() async throws {
        let authenticator = Authenticator(users: UsersFile())
        #expect(!authenticator.hasUsers)
        #expect(await authenticator.authenticate(name: "app", password: "right", from: "192.0.2.1") == nil)
        authenticator.update(users: Self.users)
        #expect(authenticator.hasUsers)
        #expect(await authenticator.authenticate(name: "app", password: "right", from: "192.0.2.1")?.name == "app")
        authenticator.update(users: UsersFile(users: [User(name: "app", passwordHash: try PasswordHash.make("new"))]))
        #expect(await authenticator.authenticate(name: "app", password: "right", from: "192.0.2.1") == nil)
        #expect(await authenticator.authenticate(name: "app", password: "new", from: "192.0.2.1")?.name == "app")
    }
}
