import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A minimal SMTP client over real TCP for tests: sends raw lines and reads whole (multi-line) replies.
/// The input is collected by a channel handler (``Input``), so the client has no stream to finish and no
/// task of its own.
struct SMTPTestClient {
    let channel: any Channel
    private let input: Input
    private var pending = ByteBuffer()

    /// What the server sent, kept until read; one reader at a time.
    private final class Input: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer

        private struct State {
            var received: [ByteBuffer] = []
            var isClosed = false
            var error: (any Error)?
            var reader: CheckedContinuation<ByteBuffer?, any Error>?
        }

        private let state = NIOLockedValueBox(State())

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = unwrapInboundIn(data)
            let reader = state.withLockedValue { state in
                defer { state.reader = nil }
                if state.reader == nil { state.received.append(bytes) }
                return state.reader
            }
            reader?.resume(returning: bytes)
        }

        func channelInactive(context: ChannelHandlerContext) {
            end(nil)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            end(error)
            context.close(promise: nil)
        }

        private func end(_ error: (any Error)?) {
            let reader = state.withLockedValue { state in
                state.isClosed = true
                state.error = state.error ?? error
                defer { state.reader = nil }
                return state.reader
            }
            if let error { reader?.resume(throwing: error) } else { reader?.resume(returning: nil) }
        }

        /// The next bytes received; `nil` once the connection is closed.
        func next() async throws -> ByteBuffer? {
            try await withCheckedThrowingContinuation { continuation in
                let ready = state.withLockedValue { state -> Result<ByteBuffer?, any Error>? in
                    if !state.received.isEmpty { return .success(state.received.removeFirst()) }
                    if let error = state.error { return .failure(error) }
                    if state.isClosed { return .success(nil) }
                    state.reader = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        }
    }

    static func connect(to address: SocketAddress, from source: String? = nil) async throws -> SMTPTestClient {
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        if let source {
            bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: source, port: 0))
        }
        let input = Input()
        let channel = try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(input) }
            }
            .connect(to: address).get()
        return SMTPTestClient(channel: channel, input: input)
    }

    private init(channel: any Channel, input: Input) {
        self.channel = channel
        self.input = input
    }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
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
            guard var more = try await input.next() else { return nil }
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
        try? await channel.close()
    }
}
