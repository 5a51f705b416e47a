import PetrelTestSupport
import Testing
@testable import Delivery

/// The hosts whose TLS handshake failed are remembered for the memory's duration on its clock.
struct TLSFailureMemoryTests {
    @Test func forgetsAFailureAfterItsDuration() {
        let clock = TestClock()
        let memory = TLSFailureMemory(duration: .seconds(3600), clock: clock)
        #expect(!memory.recentlyFailed("mx.test:25"))
        memory.remember("mx.test:25")
        #expect(memory.recentlyFailed("mx.test:25"))
        #expect(!memory.recentlyFailed("other.test:25"))
        clock.advance(by: .seconds(3600))
        #expect(memory.recentlyFailed("mx.test:25"), "the last instant of the hour")
        clock.advance(by: .milliseconds(1))
        #expect(!memory.recentlyFailed("mx.test:25"))
    }
}
