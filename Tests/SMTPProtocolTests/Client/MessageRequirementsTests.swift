import Testing
@testable import SMTPProtocol

/// What a message needs of a hop, and what is done when the hop lacks it.
struct MessageRequirementsTests {
    static let full = ServerCapabilities(ehloReply: SMTPReply(250, nil, ["mx.test", "8BITMIME", "SMTPUTF8"]))
    static let plain = ServerCapabilities(ehloReply: SMTPReply(250, nil, ["mx.test"]))
    static let eightBitOnly = ServerCapabilities(ehloReply: SMTPReply(250, nil, ["mx.test", "8BITMIME"]))

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var requirements: MessageRequirements
        var capabilities: ServerCapabilities
        var adaptation: MessageRequirements.Adaptation
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "7-bit, short lines, to any hop", requirements: MessageRequirements(needsSMTPUTF8: false, profile: ContentProfile()),
             capabilities: plain, adaptation: .none),
        Case(name: "8-bit body to a hop with 8BITMIME", requirements: MessageRequirements(needsSMTPUTF8: false, profile: ContentProfile(hasEightBitBody: true)),
             capabilities: eightBitOnly, adaptation: .none),
        Case(name: "8-bit body to a hop without", requirements: MessageRequirements(needsSMTPUTF8: false, profile: ContentProfile(hasEightBitBody: true)),
             capabilities: plain, adaptation: .convert(allowsEightBit: false)),
        Case(name: "8-bit headers only (not SMTPUTF8): left alone", requirements: MessageRequirements(needsSMTPUTF8: false, profile: ContentProfile(hasEightBitHeaders: true)),
             capabilities: plain, adaptation: .none),
        Case(name: "long lines to a hop with 8BITMIME", requirements: MessageRequirements(needsSMTPUTF8: false, profile: ContentProfile(hasEightBitBody: true, hasLongLines: true)),
             capabilities: eightBitOnly, adaptation: .convert(allowsEightBit: true)),
        Case(name: "needs SMTPUTF8, hop without", requirements: MessageRequirements(needsSMTPUTF8: true, profile: ContentProfile(hasEightBitHeaders: true)),
             capabilities: eightBitOnly, adaptation: .refuse(MessageRequirements.smtpUTF8Refusal)),
        Case(name: "needs SMTPUTF8, hop with", requirements: MessageRequirements(needsSMTPUTF8: true, profile: ContentProfile(hasEightBitHeaders: true)),
             capabilities: full, adaptation: .none),
    ]

    @Test(arguments: cases)
    func adapts(_ test: Case) {
        #expect(test.requirements.adaptation(to: test.capabilities) == test.adaptation)
    }

    /// RFC 6531 §3.4: SMTPUTF8 is needed for a non-ASCII address or UTF-8 in the header section, and only
    /// when the client said SMTPUTF8; saying it for all-ASCII mail needs nothing.
    @Test(arguments: [
        (isSMTPUTF8: true, addresses: ["a@b.test"], headers: false, needs: false),
        (isSMTPUTF8: true, addresses: ["a@b.test", "jörg@b.test"], headers: false, needs: true),
        (isSMTPUTF8: true, addresses: ["a@b.test"], headers: true, needs: true),
        (isSMTPUTF8: false, addresses: ["a@b.test"], headers: true, needs: false),
    ])
    func findsWhetherSMTPUTF8IsNeeded(_ test: (isSMTPUTF8: Bool, addresses: [String], headers: Bool, needs: Bool)) {
        var parameters = MailParameters()
        parameters.isSMTPUTF8 = test.isSMTPUTF8
        let requirements = MessageRequirements(parameters: parameters, addresses: test.addresses,
                                               profile: ContentProfile(hasEightBitHeaders: test.headers))
        #expect(requirements.needsSMTPUTF8 == test.needs)
    }
}
