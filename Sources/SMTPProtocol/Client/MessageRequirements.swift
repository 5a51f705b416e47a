/// What a message needs of the next hop, and what to do when the hop lacks it; decided per host once
/// its EHLO reply is known.
public struct MessageRequirements: Hashable, Sendable {
    /// RFC 6531 §3.4: the client said SMTPUTF8 *and* something needs it, a non-ASCII address in the
    /// envelope or UTF-8 in a header field (RFC 6532 §3). Many clients say SMTPUTF8 for all mail; a message
    /// that needs nothing non-ASCII goes to any hop, without the parameter.
    public var needsSMTPUTF8: Bool
    public var profile: ContentProfile

    public init(needsSMTPUTF8: Bool, profile: ContentProfile) {
        self.needsSMTPUTF8 = needsSMTPUTF8
        self.profile = profile
    }

    /// From the envelope and the scanned text.
    public init(parameters: MailParameters, addresses: [String], profile: ContentProfile) {
        let hasNonASCIIAddress = addresses.contains { $0.utf8.contains { $0 >= 0x80 } }
        self.init(needsSMTPUTF8: parameters.isSMTPUTF8 && (hasNonASCIIAddress || profile.hasEightBitHeaders), profile: profile)
    }

    public enum Adaptation: Hashable, Sendable {
        /// Send the text as it is stored.
        case none
        /// Convert it first with ``MIMEConverter`` (`allowsEightBit` when the hop offers 8BITMIME).
        case convert(allowsEightBit: Bool)
        /// This hop cannot take the message; another might.
        case refuse(SMTPReply)
    }

    public func adaptation(to capabilities: ServerCapabilities) -> Adaptation {
        if needsSMTPUTF8 && !capabilities.supportsSMTPUTF8 {
            return .refuse(Self.smtpUTF8Refusal)
        }
        let needsSevenBit = profile.hasEightBitBody && !capabilities.supports8BitMIME
        if needsSevenBit || profile.hasLongLines {
            return .convert(allowsEightBit: capabilities.supports8BitMIME)
        }
        return .none
    }

    /// RFC 6531 §3.2 and RFC 3463 §3.7 `X.6.7`: the message needs SMTPUTF8 and the hop does not offer it.
    public static let smtpUTF8Refusal = SMTPReply(553, EnhancedStatusCode(5, 6, 7), "The remote server does not support SMTPUTF8, which this message requires")

    /// RFC 3463 §3.7 `X.6.3`, "conversion required but not supported": the text must be converted to go
    /// on (8-bit data to a hop without 8BITMIME, RFC 6152 §3, or lines over RFC 5321 §4.5.3.1.6's limit,
    /// which every hop may refuse) and cannot be. `X.6.3` names both cases better than `X.6.0` (other
    /// media error): the content itself is fine, only its form for this path is not.
    public static func conversionRefusal(_ failure: MIMEConverter.Failure) -> SMTPReply {
        SMTPReply(554, EnhancedStatusCode(5, 6, 3), "The message must be converted for the remote server and cannot be: \(failure)")
    }
}
