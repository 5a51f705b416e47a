import NIOCore
import NIOPosix

/// A minimal SMTP client over real TCP for tests: sends raw lines and reads whole (multi-line) replies.
struct SMTPTestClient {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    /// Finishes the outbound writer when the last copy of the client goes (NIO traps on a writer that is
    /// dropped unfinished, and a test may end without `close()`, e.g. after the server hung up).
    private final class WriterOwner: Sendable {
        let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
        init(_ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) { self.outbound = outbound }
        deinit { outbound.finish() }
    }
    private let writer: WriterOwner
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private var pending = ByteBuffer()

    static func connect(to address: SocketAddress, from source: String? = nil) async throws -> SMTPTestClient {
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        if let source {
            bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: source, port: 0))
        }
        let channel = try await bootstrap.connect(to: address) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        return SMTPTestClient(channel: channel, iterator: channel.inbound.makeAsyncIterator())
    }

    private init(channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator) {
        self.channel = channel
        self.writer = WriterOwner(channel.outbound)
        self.iterator = iterator
    }

    func send(_ text: String) async throws {
        try await writer.outbound.write(ByteBuffer(string: text))
    }

    /// The next whole reply, its lines joined by "\n"; `nil` when the server closed the connection.
    mutating func readReply() async throws -> String? {
        var lines: [String] = []
        while true {
            if let line = nextLine() {
                lines.append(line)
                let bytes = Array(line.utf8)
                if bytes.count < 4 || bytes[3] == UInt8(ascii: " ") {
                    return lines.joined(separator: "\n")
                }
                continue
            }
            guard var more = try await iterator.next() else { return nil }
            pending.writeBuffer(&more)
        }
    }

    /// Sends a command and returns its reply.
    mutating func command(_ line: String) async throws -> String? {
        try await send(line + "\r\n")
        return try await readReply()
    }

    private mutating func nextLine() -> String? {
        let view = pending.readableBytesView
        guard let lf = view.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let length = lf - view.startIndex
        let line = pending.readString(length: length)!
        pending.moveReaderIndex(forwardBy: 1)
        return line.hasSuffix("\r") ? String(line.dropLast()) : line
    }

    func close() async {
        writer.outbound.finish()
        try? await channel.channel.close()
    }
}
