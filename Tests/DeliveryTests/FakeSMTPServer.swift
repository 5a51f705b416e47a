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
    }

    let host: String
    let port: Int
    private let script: Script
    private let state = NIOLockedValueBox(State())
    private let channel: any Channel
    /// Counts the connections that have ended.
    let endedConnections = EventCount()

    private struct State {
        var messages: [Message] = []
        var offers: [String: Int] = [:]
        var commands: [String] = []
        var connections = 0
    }

    var messages: [Message] { state.withLockedValue { $0.messages } }
    var commands: [String] { state.withLockedValue { $0.commands } }
    var connections: Int { state.withLockedValue { $0.connections } }

    init(host: String, port: Int, script: Script = Script()) async throws {
        self.host = host
        self.script = script
        let state = self.state
        let ended = self.endedConnections
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        self.port = server.channel.localAddress!.port!
        self.channel = server.channel
        Task {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask {
                            try? await Self.serve(connection, script: script, state: state)
                            ended.signal()
                        }
                    }
                }
            }
        }
    }

    func stop() async {
        try? await channel.close()
    }

    private static func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, script: Script, state: NIOLockedValueBox<State>) async throws {
        state.withLockedValue { $0.connections += 1 }
        try await connection.executeThenClose { inbound, outbound in
            func say(_ text: String) async throws { try await outbound.write(ByteBuffer(string: text + "\r\n")) }
            try await say(script.greeting)
            if !script.greeting.hasPrefix("220") { return }
            var input = ByteBuffer()
            var framer = CommandLineFramer()
            var decoder: DataDecoder?
            var text = ByteBuffer()
            var mailFrom = ""
            var recipients: [String] = []
            for try await var bytes in inbound {
                input.writeBuffer(&bytes)
                while true {
                    if var current = decoder {
                        let done = current.decode(&input, into: &text)
                        decoder = current
                        guard done else { break }
                        decoder = nil
                        let number = state.withLockedValue { state -> Int in
                            state.messages.append(Message(mailFrom: mailFrom, recipients: recipients, text: String(buffer: text)))
                            return state.messages.count
                        }
                        try await say(script.dataReply(number))
                        text.clear()
                        recipients = []
                        continue
                    }
                    guard case .line(let lineBuffer) = framer.next(&input) else { break }
                    let line = String(buffer: lineBuffer)
                    state.withLockedValue { $0.commands.append(line) }
                    let verb = line.prefix(4).uppercased()
                    switch verb {
                    case "EHLO":
                        let lines = ["fake.test"] + script.extensions
                        try await say(lines.enumerated().map { "250\($0.offset == lines.count - 1 ? " " : "-")\($0.element)" }.joined(separator: "\r\n"))
                    case "HELO": try await say("250 fake.test")
                    case "MAIL":
                        mailFrom = Self.path(in: line)
                        recipients = []
                        try await say("250 2.1.0 Ok")
                    case "RCPT":
                        let address = Self.path(in: line)
                        let previous = state.withLockedValue { state -> Int in
                            defer { state.offers[address, default: 0] += 1 }
                            return state.offers[address, default: 0]
                        }
                        let reply = script.recipientReply(address, previous)
                        if reply.hasPrefix("2") { recipients.append(address) }
                        try await say(reply)
                    case "DATA":
                        if recipients.isEmpty {
                            try await say("554 5.5.1 Error: no valid recipients")
                        } else {
                            decoder = DataDecoder(maximumSize: 1 << 30, lineEndingPolicy: .reject)
                            try await say("354 go ahead")
                        }
                    case "RSET":
                        recipients = []
                        try await say("250 2.0.0 Ok")
                    case "QUIT":
                        try await say("221 2.0.0 Bye")
                        return
                    default:
                        try await say("250 2.0.0 Ok")
                    }
                }
            }
        }
    }

    /// The address between `<` and `>`.
    static func path(in line: String) -> String {
        guard let open = line.firstIndex(of: "<"), let close = line[open...].firstIndex(of: ">") else { return "" }
        return String(line[line.index(after: open)..<close])
    }
}
