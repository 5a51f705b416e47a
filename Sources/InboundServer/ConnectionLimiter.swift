import NIOConcurrencyHelpers
import PetrelConfig

/// Counts open connections, overall and per client address, so that one client cannot take them all.
final class ConnectionLimiter: Sendable {
    enum Admission: Equatable {
        case admitted
        case tooManyConnections
        case tooManyFromClient
    }

    private struct Counts {
        var total = 0
        var perClient: [IPAddress: Int] = [:]
    }

    private let counts = NIOLockedValueBox(Counts())
    private let limits: NIOLockedValueBox<(total: Int, perClient: Int)>

    init(maximumConnections: Int, maximumPerClient: Int) {
        limits = NIOLockedValueBox((maximumConnections, maximumPerClient))
    }

    func updateLimits(maximumConnections: Int, maximumPerClient: Int) {
        limits.withLockedValue { $0 = (maximumConnections, maximumPerClient) }
    }

    /// Admits a connection, counting it; every admitted connection must be released once.
    func admit(_ client: IPAddress) -> Admission {
        let limits = self.limits.withLockedValue { $0 }
        return counts.withLockedValue { counts in
            if counts.total >= limits.total { return .tooManyConnections }
            if counts.perClient[client, default: 0] >= limits.perClient { return .tooManyFromClient }
            counts.total += 1
            counts.perClient[client, default: 0] += 1
            return .admitted
        }
    }

    func release(_ client: IPAddress) {
        counts.withLockedValue { counts in
            counts.total -= 1
            let remaining = counts.perClient[client, default: 1] - 1
            counts.perClient[client] = remaining > 0 ? remaining : nil
        }
    }
}
