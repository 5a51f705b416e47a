import Testing
@testable import SMTPProtocol

/// The `Received:` field (RFC 5321 §4.4) and its protocol names (RFC 3848 §2, RFC 6531 §3.7.3).
struct TraceHeadersTests {
    struct ProtocolCase: Sendable, CustomTestStringConvertible {
        var isExtended: Bool
        var isTLS: Bool
        var isAuthenticated: Bool
        var isSMTPUTF8: Bool
        var name: String
        var testDescription: String { name }
    }

    static let protocolCases: [ProtocolCase] = [
        ProtocolCase(isExtended: false, isTLS: false, isAuthenticated: false, isSMTPUTF8: false, name: "SMTP"),
        ProtocolCase(isExtended: true, isTLS: false, isAuthenticated: false, isSMTPUTF8: false, name: "ESMTP"),
        ProtocolCase(isExtended: true, isTLS: true, isAuthenticated: false, isSMTPUTF8: false, name: "ESMTPS"),
        ProtocolCase(isExtended: true, isTLS: false, isAuthenticated: true, isSMTPUTF8: false, name: "ESMTPA"),
        ProtocolCase(isExtended: true, isTLS: true, isAuthenticated: true, isSMTPUTF8: false, name: "ESMTPSA"),
        ProtocolCase(isExtended: true, isTLS: false, isAuthenticated: false, isSMTPUTF8: true, name: "UTF8SMTP"),
        ProtocolCase(isExtended: true, isTLS: true, isAuthenticated: false, isSMTPUTF8: true, name: "UTF8SMTPS"),
        ProtocolCase(isExtended: true, isTLS: false, isAuthenticated: true, isSMTPUTF8: true, name: "UTF8SMTPA"),
        ProtocolCase(isExtended: true, isTLS: true, isAuthenticated: true, isSMTPUTF8: true, name: "UTF8SMTPSA"),
    ]

    @Test(arguments: protocolCases)
    func protocolName(_ testCase: ProtocolCase) {
        #expect(TraceHeaders.protocolName(isExtended: testCase.isExtended, isTLS: testCase.isTLS,
                                          isAuthenticated: testCase.isAuthenticated, isSMTPUTF8: testCase.isSMTPUTF8)
            == testCase.name)
    }

    struct ReceivedCase: Sendable, CustomTestStringConvertible {
        var client: ClientIdentity
        var firstLine: String
        var testDescription: String { firstLine }
    }

    static let receivedCases: [ReceivedCase] = [
        ReceivedCase(client: ClientIdentity(address: "192.0.2.7", greetingName: "vm", protocolName: "ESMTP"),
                     firstLine: "Received: from vm ([192.0.2.7])"),
        ReceivedCase(client: ClientIdentity(address: "192.0.2.7", greetingName: "vm", protocolName: "ESMTP", verifiedName: "mail.example.test"),
                     firstLine: "Received: from vm (mail.example.test [192.0.2.7])"),
        ReceivedCase(client: ClientIdentity(address: "2001:db8::7", greetingName: "vm", protocolName: "ESMTP", verifiedName: "six.example.test"),
                     firstLine: "Received: from vm (six.example.test [IPv6:2001:db8::7])"),
        ReceivedCase(client: ClientIdentity(address: "192.0.2.7", greetingName: "a(b) c", protocolName: "ESMTP", verifiedName: "x(y)"),
                     firstLine: "Received: from a_b__c (x_y_ [192.0.2.7])"),
    ]

    /// TCP-info (RFC 5321 §4.4): the address literal, after the verified reverse-DNS name when there is one.
    @Test(arguments: receivedCases)
    func receivedNamesTheClient(_ testCase: ReceivedCase) {
        let field = TraceHeaders.received(client: testCase.client, hostname: "relay.test", queueID: "Q1",
                                          recipients: [], secondsSince1970: 0)
        #expect(field.split(separator: "\r\n").first.map(String.init) == testCase.firstLine)
        #expect(field.contains("\tby relay.test (Petrel) with ESMTP id Q1; "))
    }
}
