import FuzzSupport
import NIOCore
import SMTPProtocol

// The reply parser (RFC 5321 §4.2, RFC 2034 enhanced codes): what a remote server says to Petrel's client.
// The input is the server's byte stream.
//
// Properties:
// 1. The stream fed whole, in 2 and 3 random pieces, and byte by byte gives the same replies and the same
//    error (or none).
// 2. Every reply has a code in 200...599, 1 to 200 lines, no CR-free LF in any line (lines end at LF), and an
//    enhanced code, when there is one, whose class is the code's first digit.
// 3. Writing a reply (`SMTPReply.write`) and parsing it again gives the same reply, and nothing is left over.
// 4. The replies, driving a ClientSession through a transaction (as a hostile or broken server would), never
//    trap it, and a finished transaction has exactly one outcome per recipient, each consistent with its reply.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Array(UnsafeRawBufferPointer(start: start, count: count))
    var choices = FuzzChoices(input)
    let whole = parseAll([input])
    for pieces in fragmentations(of: input, choices: &choices).dropFirst() {
        let other = parseAll(pieces)
        fuzzCheck(other == whole, "in pieces \(pieces.map { show($0) }): \(other), whole: \(whole)")
    }
    for reply in whole.replies {
        checkReply(reply, input: input)
    }
    driveClient(whole.replies, choices: &choices)
    return 0
}

struct Parsed: Equatable, CustomStringConvertible {
    var replies: [SMTPReply] = []
    var error: ReplyParser.ParseError?
    var description: String { "\(replies.map(\.description)) error \(String(describing: error))" }
}

func parseAll(_ pieces: [[UInt8]]) -> Parsed {
    var parser = ReplyParser()
    var buffer = ByteBuffer()
    var result = Parsed()
    for piece in pieces {
        buffer.writeBytes(piece)
        do {
            while let reply = try parser.next(&buffer) { result.replies.append(reply) }
        } catch {
            result.error = error
            return result
        }
    }
    return result
}

func checkReply(_ reply: SMTPReply, input: [UInt8]) {
    func context() -> String { "reply \(reply), lines \(reply.lines.map { show(Array($0.utf8)) }), from \(show(input))" }
    fuzzCheck((200...599).contains(reply.code), "code out of range; \(context())")
    fuzzCheck(!reply.lines.isEmpty && reply.lines.count <= ReplyParser.maximumLines, "\(reply.lines.count) lines; \(context())")
    fuzzCheck(reply.lines.allSatisfy { !$0.utf8.contains(10) }, "a line holds an LF; \(context())")
    if let enhanced = reply.enhancedCode {
        fuzzCheck(enhanced.codeClass == reply.code / 100, "enhanced class differs from the code; \(context())")
        fuzzCheck((0...999).contains(enhanced.subject) && (0...999).contains(enhanced.detail), "enhanced code out of range; \(context())")
    }
    _ = reply.description

    var wire = ByteBuffer()
    reply.write(to: &wire)
    let written = Array(wire.readableBytesView)
    var parser = ReplyParser()
    let again: SMTPReply?
    do {
        again = try parser.next(&wire)
    } catch {
        fuzzFail("the written reply \(show(written)) does not parse: \(error); \(context())")
    }
    fuzzCheck(again == reply, "written as \(show(written)), parsed again as \(String(describing: again)); \(context())")
    fuzzCheck(wire.readableBytes == 0, "\(wire.readableBytes) bytes left after the written reply \(show(written)); \(context())")
}

// MARK: - The client state machine, driven by these replies

func driveClient(_ replies: [SMTPReply], choices: inout FuzzChoices) {
    let credentials = ClientSession.Security.Credentials(user: "relay", password: "secret")
    let security: ClientSession.Security
    switch choices.int(in: 0...3) {
    case 0: security = .plaintext
    case 1: security = ClientSession.Security(usesTLS: true)
    case 2: security = ClientSession.Security(requiresTLS: true)
    default: security = ClientSession.Security(requiresTLS: true, credentials: credentials)
    }
    var parameters = MailParameters()
    parameters.isSMTPUTF8 = choices.int(in: 0...3) == 0
    parameters.dsnReturn = choices.bool() ? .headers : nil
    parameters.dsnEnvelopeID = choices.bool() ? "QQ1+2B" : nil
    var recipientParameters = RecipientParameters()
    recipientParameters.notify = choices.bool() ? [.failure, .delay] : nil
    let transactions = (0..<choices.int(in: 1...3)).map { number in
        OutboundTransaction(
            reversePath: number == 1 ? "" : "sender@example.org",
            parameters: parameters,
            recipients: (0..<choices.int(in: 1...4)).map { OutboundRecipient(address: "r\($0)@example.net", parameters: recipientParameters) },
            size: choices.int(in: 0...100_000)
        )
    }
    var pending = transactions[...]
    var current: OutboundTransaction?
    var client = ClientSession(heloName: "relay.example.org", security: security)
    var remaining = replies[...]
    var action = ClientSession.Action.wait

    func context() -> String { "security \(security), replies \(replies.map(\.description))" }

    // Follows the driver (Delivery) as far as the replies go.
    var steps = 0
    while true {
        steps += 1
        fuzzCheck(steps < 10_000, "the client does not make progress; \(context())")
        _ = client.wait
        switch action {
        case .send(let commands):
            fuzzCheck(commands.hasSuffix("\r\n") && !commands.isEmpty, "a command without CRLF: \(commands.debugDescription); \(context())")
            guard let reply = remaining.popFirst() else { return }
            action = client.receive(reply)
        case .wait:
            guard let reply = remaining.popFirst() else { return }
            action = client.receive(reply)
        case .sendMessage:
            action = client.messageSent()
            fuzzCheck(action == .wait, "messageSent gave \(action); \(context())")
        case .ready:
            fuzzCheck(client.isReady, "ready, but isReady is false; \(context())")
            if let next = pending.popFirst() {
                current = next
                action = client.start(next)
            } else {
                action = client.quit()
            }
        case .finished(let outcomes):
            guard let transaction = current else { fuzzFail("finished with no transaction; \(context())") }
            fuzzCheck(outcomes.count == transaction.recipients.count,
                      "\(outcomes.count) outcomes for \(transaction.recipients.count) recipients; \(context())")
            for outcome in outcomes {
                switch outcome {
                case .delivered(let reply): fuzzCheck(reply.isPositive, "delivered with \(reply); \(context())")
                case .deferred(let reply): fuzzCheck(reply.isTransientFailure, "deferred with \(reply); \(context())")
                case .failed(let reply): fuzzCheck(reply.isPermanentFailure, "failed with \(reply); \(context())")
                }
            }
            current = nil
            fuzzCheck(client.isReady, "finished, but not ready for another transaction; \(context())")
            action = .ready
        case .hostFailed:
            action = client.quit()
        case .startTLS:
            fuzzCheck(security.usesTLS, "STARTTLS without being asked to; \(context())")
            action = client.tlsEstablished()
        case .close:
            return
        }
    }
}
