/// The protocol limits Petrel enforces, in one place.
///
/// RFC 5321 §4.5.3.1 sets the minimum sizes every implementation must accept; the ESMTP extensions
/// that add parameters to `MAIL` and `RCPT` raise the command-line limit by the octets they may add.
public enum SMTPLimits {
    /// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets, including the CRLF.
    public static let commandLineLength = 512
    /// `MAIL`: RFC 1870 §3 (+26 for `SIZE`), RFC 3461 §4 (+100 for `RET`/`ENVID`),
    /// RFC 4954 §5 (+500 for `AUTH=`), RFC 6152/6531 (`BODY=`, `SMTPUTF8`: a few more).
    public static let mailCommandLineLength = 512 + 26 + 100 + 500 + 32
    /// `RCPT`: RFC 3461 §4 (+500 for `NOTIFY`/`ORCPT`).
    public static let recipientCommandLineLength = 512 + 500
    /// The framer refuses any line longer than the longest command we could legally accept.
    public static let maximumLineLength = mailCommandLineLength
    /// RFC 5321 §4.5.3.1.6: a line of message text is at most 1000 octets with the CRLF. We accept
    /// longer text lines (as every deployed MTA does), but never hold more than this many bytes of
    /// one line in a parser: the DATA decoder streams.
    public static let textLineLength = 1000
    /// RFC 5321 §4.5.3.1.3: a path is at most 256 octets; §4.5.3.1.1 and §4.5.3.1.2: local part 64, domain 255.
    public static let pathLength = 256
    public static let localPartLength = 64
    public static let domainLength = 255
}
