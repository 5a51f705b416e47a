import FuzzSupport
import NIOCore
import SMTPProtocol

// The path and address grammar (RFC 5321 §4.1.2, RFC 6531 §3.3), reached as the server reaches it: through
// `SMTPCommand(parsing:)` on `RCPT TO:` and `MAIL FROM:` lines. The input is the text of a path.
//
// Properties:
// 1. `RCPT TO:<x>` and `MAIL FROM:<x>` agree: the same mailbox, or the same path error (unless x starts
//    with `>`, which MAIL reads as the null path `<>`).
// 2. A mailbox that parses is well-formed and within RFC 5321's limits: a local part of 1 to 64 octets, a
//    domain of 1 to 255, a path of at most 256 with its brackets; no control characters, no CR or LF, no
//    NUL anywhere; a domain of letter-digit-hyphen labels of 1 to 63 octets, or a bracketed address literal;
//    an unquoted local part of dot-separated atoms.
// 3. Written back as `RCPT TO:<mailbox>`, it parses to the same mailbox (what Petrel relays is what it read).
// 4. The relay policy of a client that may not relay never lets through an address literal, a `%`, `!` or
//    quoted `@` in the local part, nor a domain other than the one accepted.
// 5. The same input after `RCPT TO:` / `MAIL FROM:` (parameters and all) parses or fails without trapping, and
//    a mailbox it gives obeys 2 and 3.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Array(UnsafeRawBufferPointer(start: start, count: count))
    let text = String(decoding: input, as: UTF8.self)

    let recipient = parse("RCPT TO:<" + text + ">")
    let sender = parse("MAIL FROM:<" + text + ">")
    func context() -> String { "path \(show(input)): RCPT \(recipient), MAIL \(sender)" }

    // `<>` followed by more: MAIL reads the null path and then parameters, RCPT a malformed path.
    let isNullPathPrefix = input.first == UInt8(ascii: ">")
    switch (recipient, sender) {
    case _ where isNullPathPrefix:
        break
    case (.success(.recipient(let a, _)), .success(.mail(let b?, _))):
        fuzzCheck(a == b, "different mailboxes; \(context())")
    case (.success(.recipient), .success(.mail(nil, _))):
        fuzzFail("RCPT took a path that MAIL took for <>; \(context())")
    case (.failure(let a), .failure(let b)) where isPathError(a) || isPathError(b):
        fuzzCheck(a == b, "different path errors; \(context())")
    case (.success(.recipient), .failure(let error)) where isPathError(error),
         (.failure(let error), .success(.mail(_?, _))) where isPathError(error):
        fuzzFail("one command takes the path, the other refuses it; \(context())")
    default:
        break  // Parameters after the path may suit one command and not the other.
    }
    if case .success(.recipient(let mailbox, _)) = recipient {
        checkMailbox(mailbox, context())
        checkRelayPolicy(mailbox, context())
    }
    if case .success(.mail(let mailbox?, _)) = sender { checkMailbox(mailbox, context()) }

    // The raw text as the whole argument: spaces, parameters, source routes, `<>`.
    for verb in ["RCPT TO:", "MAIL FROM:", "rcpt to: ", "MAIL FROM: "] {
        switch parse(verb + text) {
        case .success(.recipient(let mailbox, _)), .success(.mail(let mailbox?, _)):
            checkMailbox(mailbox, "\(verb)\(show(input))")
        default:
            break
        }
    }
    return 0
}

func parse(_ line: String) -> Result<SMTPCommand, SMTPSyntaxError> {
    do throws(SMTPSyntaxError) {
        return .success(try SMTPCommand(parsing: Substring(line)))
    } catch {
        return .failure(error)
    }
}

func isPathError(_ error: SMTPSyntaxError) -> Bool {
    switch error {
    case .malformedPath, .malformedDomain, .pathTooLong, .invalidUTF8: true
    default: false
    }
}

func checkMailbox(_ mailbox: Mailbox, _ context: @autoclosure () -> String) {
    let local = Array(mailbox.localPart.utf8)
    let domain = Array(mailbox.domain.utf8)
    func where_() -> String { "mailbox \(show(Array(mailbox.description.utf8))); \(context())" }
    fuzzCheck((1...64).contains(local.count), "local part of \(local.count) octets; \(where_())")
    fuzzCheck((1...255).contains(domain.count), "domain of \(domain.count) octets; \(where_())")
    fuzzCheck(local.count + 1 + domain.count + 2 <= 256, "path over 256 octets; \(where_())")
    fuzzCheck(!(local + domain).contains { $0 < 32 || $0 == 127 }, "a control character; \(where_())")

    if mailbox.isQuoted {
        fuzzCheck(local.count >= 2 && local.last == UInt8(ascii: "\""), "an unterminated quoted local part; \(where_())")
    } else {
        fuzzCheck(local.first != UInt8(ascii: ".") && local.last != UInt8(ascii: ".") && !local.contains(subsequence: [46, 46]),
                  "an empty atom in the local part; \(where_())")
        fuzzCheck(!local.contains { " \"(),:;<>@[\\]".utf8.contains($0) }, "a special in an unquoted local part; \(where_())")
    }
    if mailbox.isAddressLiteral {
        fuzzCheck(domain.count >= 3 && domain.last == UInt8(ascii: "]"), "an unterminated address literal; \(where_())")
        fuzzCheck(!domain.dropFirst().dropLast().contains { $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "]") || $0 == UInt8(ascii: "\\") || $0 <= 32 },
                  "a bracket, backslash or space inside the address literal; \(where_())")
    } else {
        for label in domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            fuzzCheck((1...63).contains(label.count), "a domain label of \(label.count) octets; \(where_())")
            fuzzCheck(label.first != UInt8(ascii: "-") && label.last != UInt8(ascii: "-"), "a label starting or ending with a hyphen; \(where_())")
            fuzzCheck(label.allSatisfy { $0 >= 0x80 || $0 == UInt8(ascii: "-") || (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) },
                      "a character outside letters, digits and hyphen in the domain; \(where_())")
        }
    }
    // What Petrel relays is what it read.
    switch parse("RCPT TO:<\(mailbox)>") {
    case .success(.recipient(let again, let parameters)):
        fuzzCheck(again == mailbox && parameters == RecipientParameters(), "written back, it parses as \(again); \(where_())")
    case let other:
        fuzzFail("written back, it does not parse: \(other); \(where_())")
    }
}

func checkRelayPolicy(_ mailbox: Mailbox, _ context: @autoclosure () -> String) {
    let policy = RelayPolicy(clientMayRelay: false, relayDomains: ["example.org"])
    guard policy.permits(mailbox) else { return }
    let local = mailbox.localPart.utf8
    func where_() -> String { "permitted \(show(Array(mailbox.description.utf8))); \(context())" }
    fuzzCheck(!mailbox.isAddressLiteral, "an address literal; \(where_())")
    fuzzCheck(!local.contains { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "!") || $0 == UInt8(ascii: "@") },
              "a routing character in the local part; \(where_())")
    let domain = mailbox.domain.utf8.map { (65...90).contains($0) ? $0 | 0x20 : $0 }
    fuzzCheck(domain.elementsEqual("example.org".utf8), "a domain other than example.org; \(where_())")
    fuzzCheck(RelayPolicy(clientMayRelay: true, relayDomains: []).permits(mailbox), "a relay client is refused; \(where_())")
}
