import DNSResolver
import NIOConcurrencyHelpers

/// The client's forward-confirmed name from reverse DNS, as far as it is known. The lookup runs beside the
/// session, in the connection's own task group, and the session never waits for it: whatever is known when
/// a message is logged and its `Received:` field written is used, and a name not known by then is `unknown`
/// (RFC 5321 §4.4 TCP-info; Postfix's `client=name[address]`).
final class ClientName: Sendable {
    private let name = NIOLockedValueBox<String?>(nil)

    /// The verified name, or `nil` when there is none or the lookup has not finished.
    var verified: String? { name.withLockedValue { $0 } }

    /// Looks the name of `address` up and keeps it; returns early, knowing nothing, when cancelled.
    func look(up address: String, with resolver: any ClientNameResolving) async {
        let found = await resolver.verifiedName(of: address)
        name.withLockedValue { $0 = found }
    }
}
