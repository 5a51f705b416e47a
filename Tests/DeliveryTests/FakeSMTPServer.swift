import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PetrelTestSupport
import SMTPProtocol

/// A destination SMTP server for tests, on a real loopback address, scripted per test: it can refuse a
/// recipient, answer `4xx` the first time and `250` the next, refuse the message, or greet with `421`.
/// It records every message it accepts.
final class FakeSMTPServer: Sendable {
    struct Message: Sendable, Equatable {
        var mailFrom: String
        var recipients: [String]
        var text: String
    }

    struct Script: Sendable {
        var greeting = "220 fake.test ESMTP"
        var extensions = ["PIPELINING", "SIZE 100000000", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN"]
        /// The reply to RCPT for an address, given how many times that address was offered before.
        var recipientReply: @Sendable (_ address: String, _ previousOffers: Int) -> String = { _, _ in "250 2.1.5 Ok" }
        var dataReply: @Sendable (_ messageNumber: Int) -> String = { _ in "250 2.0.0 Ok: queued" }
        /// How long the reply to the final dot waits (the message is recorded at once).
        var dataReplyDelay: Duration = .zero
    }

    let host: String
    let port: Int
    private let script: Script
    private let state = NIOLockedValueBox(State())
    private let channel: any Channel
    /// Counts the connections that have ended.
    let endedConnections = EventCount()
    /// Counts the messages received (signalled when the final dot arrives, before the reply).
    let receivedMessages = EventCount()

    private struct State {
        var messages: [Message] = []
        var offers: [String: Int] = [:]
        var commands: [String] = []
        var connections = 0
    }

    var messages: [Message] { state.withLockedValue { $0.messages } }
    var commands: [String] { state.withLockedValue { $0.commands } }
    var connections: Int { state.withLockedValue { $0.connections } }

    /// Binds and serves. Each connection is a channel handler on its event loop (no task of its own), so
    /// the server needs no task that could outlive a test: ``stop()`` closes the listener.
    init(host: String, port: Int, script: Script = Script()) async throws {
        self.host = host
        self.script = script
        let state = self.state
        let ended = self.endedConnections, received = self.receivedMessages
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Conversation(script: script, state: state, ended: ended, received: received))
                }
            }
            .bind(host: host, port: port).get()
        self.port = server.localAddress!.port!
        self.channel = server
    }

    /// Closes the listener; connections already open end when their client closes them.
    func stop() {
        channel.close(promise: nil)
    }

    /// One client's conversation, scripted by ``Script``.
    private final class Conversation: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private let script: Script
        private let state: NIOLockedValueBox<State>
        private let ended: EventCount
        private let received: EventCount
        private var input = ByteBuffer()
        private var framer = CommandLineFramer()
        private var decoder: DataDecoder?
        private var text = ByteBuffer()
        private var mailFrom = ""
        private var recipients: [String] = []

        init(script: Script, state: NIOLockedValueBox<State>, ended: EventCount, received: EventCount) {
            self.script = script
            self.state = state
            self.ended = ended
            self.received = received
        }

        private func say(_ text: String, context: ChannelHandlerContext) {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text + "\r\n")), promise: nil)
        }

        func channelActive(context: ChannelHandlerContext) {
            state.withLockedValue { $0.connections += 1 }
            say(script.greeting, context: context)
            if !script.greeting.hasPrefix("220") { context.close(promise: nil) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            ended.signal()
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            input.writeBuffer(&bytes)
            while context.channel.isActive {
                if var current = decoder {
                    let done = current.decode(&input, into: &text)
                    decoder = current
                    guard done else { break }
                    decoder = nil
                    let message = Message(mailFrom: mailFrom, recipients: recipients, text: String(buffer: text))
                    let number = state.withLockedValue { state -> Int in
                        state.messages.append(message)
                        return state.messages.count
                    }
                    received.signal()
                    let reply = script.dataReply(number)
                    if script.dataReplyDelay > .zero {
                        context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(script.dataReplyDelay)) {
                            self.say(reply, context: context)
                        }
                    } else {
                        say(reply, context: context)
                    }
                    text.clear()
                    recipients = []
                    continue
                }
                guard case .line(let lineBuffer) = framer.next(&input) else { break }
                command(String(buffer: lineBuffer), context: context)
            }
        }

        private func command(_ line: String, context: ChannelHandlerContext) {
            state.withLockedValue { $0.commands.append(line) }
            switch line.prefix(4).uppercased() {
            case "EHLO":
                let lines = ["fake.test"] + script.extensions
                say(lines.enumerated().map { "250\($0.offset == lines.count - 1 ? " " : "-")\($0.element)" }.joined(separator: "\r\n"), context: context)
            case "HELO": say("250 fake.test", context: context)
            case "MAIL":
                mailFrom = FakeSMTPServer.path(in: line)
                recipients = []
                say("250 2.1.0 Ok", context: context)
            case "RCPT":
                let address = FakeSMTPServer.path(in: line)
                let previous = state.withLockedValue { state -> Int in
                    defer { state.offers[address, default: 0] += 1 }
                    return state.offers[address, default: 0]
                }
                let reply = script.recipientReply(address, previous)
                if reply.hasPrefix("2") { recipients.append(address) }
                say(reply, context: context)
            case "DATA":
                if recipients.isEmpty {
                    say("554 5.5.1 Error: no valid recipients", context: context)
                } else {
                    decoder = DataDecoder(maximumSize: 1 << 30, lineEndingPolicy: .reject)
                    say("354 go ahead", context: context)
                }
            case "RSET":
                recipients = []
                say("250 2.0.0 Ok", context: context)
            case "QUIT":
                say("221 2.0.0 Bye", context: context)
                context.close(promise: nil)
            default:
                say("250 2.0.0 Ok", context: context)
            }
        }
    }

    /// The address between `<` and `>`.
    static func path(in line: String) -> String {
        guard let open = line.firstIndex(of: "<"), let close = line[open...].firstIndex(of: ">") else { return "" }
        return String(line[line.index(after: open)..<close])
    }
}
