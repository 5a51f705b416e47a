import FuzzSupport
import NIOCore
import SMTPProtocol

// The command side of the server: CommandLineFramer, SMTPCommand(parsing:) and the ServerSession state
// machine, fed as the SessionDriver feeds them (commands, then DATA through DataDecoder and
// HeaderSectionScanner, STARTTLS, AUTH). The input is what a client sends, e.g. a whole SMTP transcript.
//
// Properties:
// 1. CommandLineFramer, fed whole, in 2 and 3 random pieces and byte by byte, with the default or a tiny
//    line limit, gives exactly the frames of a reference (split on CRLF only; a line longer than the limit is
//    one `overlong`), and never holds more than the limit in its buffer.
// 2. ServerSession.receive(line:) never accepts a line containing CR or LF: the answer is a 5xx refusal
//    (or 421 when the client has made too many errors).
// 3. Every reply is well-formed: a code in 200...599, no CR or LF inside a line (no reply injection), and
//    our own ReplyParser reads back exactly what the server wrote.
// 4. What the session asks to enqueue is a real transaction: after a greeting, with 1 to maximumRecipients
//    recipients, each permitted by the relay policy (or an authenticated client), within the size limit,
//    with no bare line ending under the reject policy, SMTPUTF8 declared when an address needs it, and AUTH
//    done when the listener requires it.
// 5. The same client bytes in 3 random pieces give the same transcript as the whole.
// 6. SMTPCommand(parsing:), when it accepts a line, accepts it for the verb written at its start (ASCII,
//    case-insensitive: RFC 5321 §2.4), and a HELO/EHLO name has no space or control character.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Array(UnsafeRawBufferPointer(start: start, count: count))
    var choices = FuzzChoices(input)

    let lines = checkFramer(input, choices: &choices)
    for line in lines.prefix(64) { checkCommand(line) }

    let setup = SessionSetup(choices: &choices)
    let whole = runSession([input], setup)
    let pieces = choices.pieces(of: input, count: 3)
    let split = runSession(pieces, setup)
    fuzzCheck(split.transcript == whole.transcript,
              "in pieces \(pieces.map { show($0) }) the transcript is \(show(split.transcript)), whole \(show(whole.transcript)); \(setup)")
    return 0
}

// MARK: - 1. CommandLineFramer

enum Frame: Equatable {
    case line([UInt8])
    case overlong
}

/// Lines split on CRLF only, left to right; a line whose length with its CRLF exceeds the limit is `overlong`.
func referenceFrames(_ input: [UInt8], maximumLength: Int) -> [Frame] {
    var frames: [Frame] = []
    var lineStart = 0
    var index = 0
    while index + 1 < input.count {
        if input[index] == 13 && input[index + 1] == 10 {
            let length = index - lineStart
            frames.append(length + 2 > maximumLength ? .overlong : .line(Array(input[lineStart..<index])))
            index += 2
            lineStart = index
        } else {
            index += 1
        }
    }
    return frames
}

/// Returns the lines of the input (with the default limit) for the command checks.
func checkFramer(_ input: [UInt8], choices: inout FuzzChoices) -> [[UInt8]] {
    let limits = [SMTPLimits.maximumLineLength, choices.int(in: 0...24)]
    var lines: [[UInt8]] = []
    for maximumLength in limits {
        let expected = referenceFrames(input, maximumLength: maximumLength)
        if maximumLength == SMTPLimits.maximumLineLength {
            lines = expected.compactMap { if case .line(let line) = $0 { line } else { nil } }
        }
        for pieces in fragmentations(of: input, choices: &choices) {
            var framer = CommandLineFramer(maximumLength: maximumLength)
            var buffer = ByteBuffer()
            var frames: [Frame] = []
            for piece in pieces {
                buffer.writeBytes(piece)
                while let frame = framer.next(&buffer) {
                    switch frame {
                    case .line(let line): frames.append(.line(Array(line.readableBytesView)))
                    case .overlong: frames.append(.overlong)
                    }
                }
                fuzzCheck(buffer.readableBytes <= max(maximumLength - 1, 1),
                          "the framer holds \(buffer.readableBytes) bytes with a limit of \(maximumLength); pieces \(pieces.map { show($0) })")
            }
            fuzzCheck(frames == expected,
                      "limit \(maximumLength), pieces \(pieces.map { show($0) }): frames \(frames.map(describe)), expected \(expected.map(describe))")
        }
    }
    return lines
}

func describe(_ frame: Frame) -> String {
    switch frame {
    case .line(let bytes): show(bytes)
    case .overlong: "overlong"
    }
}

// MARK: - 6. SMTPCommand(parsing:) on its own

func checkCommand(_ line: [UInt8]) {
    let text = String(decoding: line, as: UTF8.self)
    let command: SMTPCommand
    do throws(SMTPSyntaxError) {
        command = try SMTPCommand(parsing: Substring(text))
    } catch {
        return
    }
    let written = line.prefix { $0 != UInt8(ascii: " ") }.map { (97...122).contains($0) ? $0 - 32 : $0 }
    fuzzCheck(written.elementsEqual(command.verb.utf8),
              "\(show(line)) was taken for \(command.verb), but its verb is \(show(written))")
    switch command {
    case .helo(let name), .ehlo(let name):
        fuzzCheck(!name.isEmpty && name.utf8.allSatisfy { $0 > 32 && $0 != 127 }, "greeting name \(show(Array(name.utf8))) from \(show(line))")
    case .auth(let argument):
        fuzzCheck(!argument.isEmpty, "AUTH with no argument from \(show(line))")
    default:
        break
    }
}

// MARK: - 2 to 5. The session

struct SessionSetup: CustomStringConvertible {
    var configuration: ServerSessionConfiguration
    var relayPolicy: RelayPolicy
    var allowedSenders: [String]
    var storeSucceeds: Bool
    var endsWithShutdown: Bool

    init(choices: inout FuzzChoices) {
        configuration = ServerSessionConfiguration(
            hostname: "mx.example.org",
            maximumMessageSize: choices.bool() ? 25 * 1024 * 1024 : choices.int(in: 0...200),
            maximumRecipients: choices.bool() ? 100 : choices.int(in: 1...3),
            maximumErrors: choices.bool() ? 10 : 1_000_000,
            lineEndingPolicy: choices.bool() ? .reject : .normalize,
            isSTARTTLSAvailable: choices.bool(),
            isAuthAvailable: choices.bool(),
            requiresAuthentication: choices.int(in: 0...3) == 0,
            maximumAuthFailures: choices.int(in: 1...3)
        )
        relayPolicy = RelayPolicy(clientMayRelay: choices.int(in: 0...3) == 0, relayDomains: ["example.org", "example.net"])
        allowedSenders = choices.bool() ? [] : ["@example.org", "postmaster@example.net"]
        storeSucceeds = choices.int(in: 0...7) != 0
        endsWithShutdown = choices.bool()
    }

    var description: String { "\(configuration), \(relayPolicy), allowed senders \(allowedSenders), store succeeds \(storeSucceeds), ends with shutdown \(endsWithShutdown)" }
}

struct SessionRun {
    var transcript: [UInt8] = []
}

/// The password the fake authenticator accepts.
let goodPassword = "secret"

func runSession(_ pieces: [[UInt8]], _ setup: SessionSetup) -> SessionRun {
    var session = ServerSession(configuration: setup.configuration, clientAddress: "192.0.2.7", relayPolicy: setup.relayPolicy)
    var run = SessionRun()
    func context() -> String { "input \(pieces.map { show($0) }), transcript so far \(show(run.transcript)); \(setup)" }
    func record(_ reply: SMTPReply) { write(reply, into: &run.transcript, context()) }

    record(session.greetingReply())
    var input = ByteBuffer()
    var framer = CommandLineFramer()
    var body: (decoder: DataDecoder, headers: HeaderSectionScanner, text: ByteBuffer)?

    for piece in pieces {
        input.writeBytes(piece)
        processing: while true {
            if var current = body {
                let start = current.text.writerIndex
                let isFinished = current.decoder.decode(&input, into: &current.text)
                if !current.headers.isFinished, current.text.writerIndex > start {
                    current.headers.scan(current.text.getSlice(at: start, length: current.text.writerIndex - start)!)
                }
                guard isFinished else {
                    body = current
                    break processing
                }
                body = nil
                let summary = ServerSession.DataSummary(decoder: current.decoder, headers: current.headers)
                switch session.dataFinished(summary) {
                case .enqueue(let envelope, _):
                    checkEnvelope(envelope, summary: summary, session: session, setup: setup, context())
                    switch setup.storeSucceeds ? session.enqueued(queueID: "4XJ1") : session.enqueueFailed() {
                    case .reply(let reply): record(reply)
                    case let other: fuzzFail("the queue's answer gave \(other); \(context())")
                    }
                case .reply(let reply):
                    fuzzCheck(reply.code >= 500, "a message refused with \(reply); \(context())")
                    record(reply)
                case let other:
                    fuzzFail("the end of DATA gave \(other); \(context())")
                }
                continue
            }
            guard let frame = framer.next(&input) else { break processing }
            var action: ServerSession.Action
            var hasLineEnding = false
            switch frame {
            case .line(let line):
                hasLineEnding = line.readableBytesView.contains { $0 == 13 || $0 == 10 }
                action = session.receive(line: line)
            case .overlong:
                action = session.receiveOverlongLine()
            }
            if hasLineEnding {
                switch action {
                case .reply(let reply), .replyAndClose(let reply):
                    fuzzCheck(reply.code >= 500 || reply.code == 421, "a line with a bare CR or LF was answered \(reply); \(context())")
                default:
                    fuzzFail("a line with a bare CR or LF was taken: \(action); \(context())")
                }
            }
            if case .verifyCredentials(let user, let password) = action {
                fuzzCheck(!user.isEmpty, "credentials with an empty user; \(context())")
                if password == goodPassword {
                    // As the driver does: the account's own name from the users file, not what the client typed.
                    action = session.authenticated(user: "alice", allowedSenders: setup.allowedSenders)
                } else {
                    action = session.authenticationFailed(throttled: password.utf8.count % 2 == 1)
                }
            }
            switch action {
            case .reply(let reply):
                record(reply)
            case .replyAndClose(let reply):
                record(reply)
                fuzzCheck(session.isClosed, "replyAndClose, but the session is open; \(context())")
                return run
            case .beginData(let reply):
                record(reply)
                fuzzCheck(session.isReadingData, "DATA began, but the session is not reading data; \(context())")
                body = (DataDecoder(maximumSize: setup.configuration.maximumMessageSize, lineEndingPolicy: setup.configuration.lineEndingPolicy),
                        HeaderSectionScanner(), ByteBuffer())
            case .startTLS(let reply):
                record(reply)
                fuzzCheck(setup.configuration.isSTARTTLSAvailable && !session.isTLSActive, "STARTTLS when not offered; \(context())")
                // The driver throws away what was pipelined before the handshake (RFC 3207 §6); that is the
                // driver's business. Here the rest of the input is what the client sends over TLS, so that the
                // fuzzer reaches the session after STARTTLS: EHLO again, AUTH, a transaction.
                session.tlsEstablished(description: "TLSv1.3 TLS_AES_128_GCM_SHA256")
            case .enqueue, .verifyCredentials:
                fuzzFail("the session asked for \(action) out of turn; \(context())")
            }
        }
    }
    // The client went quiet: a timeout, or the server shuts down (when no message is being read).
    if body == nil {
        let action = setup.endsWithShutdown ? session.shuttingDown() : session.timedOut()
        guard case .replyAndClose(let reply) = action else { fuzzFail("the end gave \(action); \(context())") }
        fuzzCheck(reply.code == 421, "the end answered \(reply); \(context())")
        record(reply)
    }
    return run
}

func write(_ reply: SMTPReply, into transcript: inout [UInt8], _ context: @autoclosure () -> String) {
    fuzzCheck((200...599).contains(reply.code), "reply code \(reply.code); \(context())")
    for line in reply.lines {
        fuzzCheck(!line.utf8.contains { $0 == 13 || $0 == 10 }, "a CR or LF in the reply line \(show(Array(line.utf8))); \(context())")
    }
    var wire = ByteBuffer()
    reply.write(to: &wire)
    let written = Array(wire.readableBytesView)
    var parser = ReplyParser()
    do {
        let parsed = try parser.next(&wire)
        fuzzCheck(parsed == reply && wire.readableBytes == 0,
                  "the client reads \(show(written)) as \(String(describing: parsed)), not \(reply); \(context())")
    } catch {
        fuzzFail("the client cannot read \(show(written)): \(error); \(context())")
    }
    transcript += written
}

func checkEnvelope(_ envelope: Envelope, summary: ServerSession.DataSummary, session: ServerSession, setup: SessionSetup,
                   _ context: @autoclosure () -> String) {
    let configuration = setup.configuration
    func where_() -> String { "envelope \(envelope), summary \(summary); \(context())" }
    fuzzCheck(!envelope.recipients.isEmpty && envelope.recipients.count <= configuration.maximumRecipients,
              "\(envelope.recipients.count) recipients; \(where_())")
    fuzzCheck(!summary.exceededMaximumSize && summary.size <= configuration.maximumMessageSize, "over the size limit; \(where_())")
    fuzzCheck(!((summary.sawBareLineEnding || summary.sawNUL) && configuration.lineEndingPolicy == .reject),
              "a bare line ending or NUL accepted; \(where_())")
    fuzzCheck(summary.receivedCount <= configuration.maximumReceivedHeaders, "a mail loop accepted; \(where_())")
    fuzzCheck(!configuration.requiresAuthentication || session.authenticatedUser != nil, "no AUTH on a listener that requires it; \(where_())")
    fuzzCheck(!envelope.client.greetingName.isEmpty, "no greeting name; \(where_())")
    if session.authenticatedUser == nil {
        for recipient in envelope.recipients {
            fuzzCheck(setup.relayPolicy.permits(recipient.mailbox), "relayed to \(recipient.mailbox); \(where_())")
        }
    } else if !setup.allowedSenders.isEmpty {
        let sender = envelope.reversePath?.description.lowercased() ?? ""
        fuzzCheck(sender.hasSuffix("@example.org") || sender == "postmaster@example.net", "sent as \(sender); \(where_())")
    }
    if !envelope.parameters.isSMTPUTF8 {
        fuzzCheck(envelope.reversePath?.requiresSMTPUTF8 != true && envelope.recipients.allSatisfy { !$0.mailbox.requiresSMTPUTF8 },
                  "a UTF-8 address without SMTPUTF8; \(where_())")
    }
}
