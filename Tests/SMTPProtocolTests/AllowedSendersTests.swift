import Testing
import SMTPProtocol

/// The senders an authenticated user may give in MAIL FROM (the users file's lists).
struct AllowedSendersTests {
    @Test func anySenderWhenTheListIsEmpty() {
        let any = AllowedSenders([])
        #expect(any.permits("anyone@anywhere.test"))
        #expect(any.permits(""))
    }

    static let senders: [(String, Bool)] = [
        ("app@example.com", true),
        ("APP@Example.Com", true),
        ("other@example.com", false),
        ("app@example.com.evil.test", false),
        ("xapp@example.com", false),
        ("anyone@example.org", true),
        ("Anyone@EXAMPLE.ORG", true),
        ("x@sub.example.org", false),        // a domain entry is that domain, not its subdomains
        ("x@notexample.org", false),
        ("x@example.org.evil.test", false),
        ("\"@example.org\"@evil.test", false),
        ("", false),                         // the null sender is not in the list
    ]

    @Test(arguments: senders)
    func limitsSendersToTheList(address: String, allowed: Bool) {
        let senders = AllowedSenders(["app@example.com", "@Example.org"])
        #expect(senders.permits(address) == allowed)
    }
}
