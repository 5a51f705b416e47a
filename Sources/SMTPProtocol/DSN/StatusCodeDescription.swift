/// The meanings RFC 3463 §3 gives the enhanced status codes, for the human-readable part of a
/// delivery status notification when the remote server gave no text of its own.
extension EnhancedStatusCode {
    /// `"bad destination mailbox address"` for X.1.1; the subject's "other" text for a detail RFC 3463
    /// does not define; `nil` for an unknown subject.
    var statusDescription: String? {
        let details = Self.descriptions[subject] ?? []
        if detail < details.count { return details[detail] }
        return details.first
    }

    /// RFC 3463 §3.1–§3.8: for each subject, the texts of its details 0, 1, 2, ...
    private static let descriptions: [Int: [String]] = [
        0: ["other undefined status"],
        1: [
            "other address status", "bad destination mailbox address", "bad destination system address",
            "bad destination mailbox address syntax", "destination mailbox address ambiguous",
            "destination address valid", "destination mailbox has moved", "bad sender's mailbox address syntax",
            "bad sender's system address",
        ],
        2: [
            "other or undefined mailbox status", "mailbox disabled, not accepting messages", "mailbox full",
            "message length exceeds administrative limit", "mailing list expansion problem",
        ],
        3: [
            "other or undefined mail system status", "mail system full", "system not accepting network messages",
            "system not capable of selected features", "message too big for system",
            "system incorrectly configured",
        ],
        4: [
            "other or undefined network or routing status", "no answer from host", "bad connection",
            "directory server failure", "unable to route", "mail system congestion", "routing loop detected",
            "delivery time expired",
        ],
        5: [
            "other or undefined protocol status", "invalid command", "syntax error", "too many recipients",
            "invalid command arguments", "wrong protocol version",
        ],
        6: [
            "other or undefined media error", "media not supported", "conversion required and prohibited",
            "conversion required but not supported", "conversion with loss performed", "conversion failed",
        ],
        7: [
            "other or undefined security status", "delivery not authorized, message refused",
            "mailing list expansion prohibited", "security conversion required but not possible",
            "security features not supported", "cryptographic failure", "cryptographic algorithm not supported",
            "message integrity failure",
        ],
    ]
}
