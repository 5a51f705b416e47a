import Foundation
import Logging
import MailQueue
import NIOCore
import PetrelConfig
import SMTPProtocol
import SMTPTransport

/// Runs one connection: frames the client's bytes, feeds the ``ServerSession`` state machine, performs
/// its actions, and writes the replies. Replies to pipelined commands are gathered and written together
/// once the buffered input is used up (RFC 2920 §3.1).
struct SessionDriver {
    let connection: AcceptedConnection
    let client: IPAddress
    let settings: InboundSettings
    let committer: GroupCommitter
    let logger: Logger

    private var allocator: ByteBufferAllocator { connection.channel.channel.allocator }

    func run() async throws {
        try await connection.channel.executeThenClose { inbound, outbound in
            var session = ServerSession(
                configuration: settings.session,
                clientAddress: client.description,
                relayPolicy: settings.relayPolicy(for: client)
            )
            var output = allocator.buffer(capacity: 1024)
            session.greetingReply().write(to: &output)
            try await outbound.write(output)
            output.clear()

            var input = allocator.buffer(capacity: 0)
            var framer = CommandLineFramer()
            var body: MessageBody?
            var isShutdownRequested = false
            do {
            for try await event in inbound {
                switch event {
                case .bytes(var bytes):
                    if input.readableBytes == 0 { input = bytes } else { input.writeBuffer(&bytes) }
                case .timedOut:
                    if var current = body { await current.discard() }
                    session.timedOut().reply.write(to: &output)
                    try await outbound.write(output)
                    logger.info("timeout", metadata: ["client": "\(client)", "while": "\(body == nil ? "commands" : "DATA")"])
                    return
                case .shutdown:
                    isShutdownRequested = true
                }

                processing: while true {
                    if var current = body {
                        let isFinished = try await current.consume(&input)
                        guard isFinished else {
                            body = current
                            break processing
                        }
                        body = nil
                        setTimeout(settings.commandTimeout)
                        switch session.dataFinished(current.summary) {
                        case .enqueue(let envelope, let missing):
                            if output.readableBytes > 0 {
                                try await outbound.write(output)
                                output.clear()
                            }
                            let action = await store(&current, envelope: envelope, missing: missing, session: &session)
                            action.reply.write(to: &output)
                        case let action:
                            await current.discard()
                            logger.info("message refused", metadata: ["client": "\(client)", "reply": "\(action.reply)"])
                            action.reply.write(to: &output)
                        }
                        continue
                    }
                    if isShutdownRequested { break processing }
                    guard let frame = framer.next(&input) else { break processing }
                    let action: ServerSession.Action
                    switch frame {
                    case .line(let line): action = session.receive(line: line)
                    case .overlong: action = session.receiveOverlongLine()
                    }
                    switch action {
                    case .reply(let reply):
                        reply.write(to: &output)
                    case .replyAndClose(let reply):
                        reply.write(to: &output)
                        try await outbound.write(output)
                        return
                    case .beginData(let reply):
                        reply.write(to: &output)
                        try await outbound.write(output)
                        output.clear()
                        setTimeout(settings.dataTimeout)
                        body = MessageBody(
                            queueID: QueueID.make(),
                            spoolDirectory: committer.store.spoolDirectory,
                            decoder: DataDecoder(maximumSize: settings.session.maximumMessageSize,
                                                 lineEndingPolicy: settings.session.lineEndingPolicy),
                            allocator: allocator
                        )
                    case .enqueue:
                        preconditionFailure("the session asked to enqueue outside DATA")
                    }
                }

                if isShutdownRequested && body == nil {
                    session.shuttingDown().reply.write(to: &output)
                    try await outbound.write(output)
                    return
                }
                if output.readableBytes > 0 {
                    try await outbound.write(output)
                    output.clear()
                }
                if input.readableBytes == 0 {
                    input.clear()
                } else if input.readerIndex > 64 * 1024 {
                    input.discardReadBytes()
                }
            }
            } catch {
                if var current = body { await current.discard() }
                throw error
            }
            // The client went away in the middle of a message: it was never acknowledged.
            if var current = body { await current.discard() }
        }
    }

    /// Writes the message to the queue and returns the session's answer: `250` once it is durable,
    /// `452 4.3.1` when it could not be stored.
    private func store(
        _ body: inout MessageBody, envelope: Envelope, missing: ServerSession.MissingHeaders, session: inout ServerSession
    ) async -> ServerSession.Action {
        let now = Date()
        let seconds = Int64(now.timeIntervalSince1970)
        let hostname = settings.session.hostname
        let trace = TraceHeaders.received(
            client: envelope.client, hostname: hostname, queueID: body.queueID,
            recipients: envelope.recipients, secondsSince1970: seconds
        ) + TraceHeaders.missing(missing, queueID: body.queueID, hostname: hostname, secondsSince1970: seconds)
        let contentSize = body.summary.size
        do {
            let content = try await body.finish()
            let message = IncomingMessage(
                queueID: body.queueID, envelope: envelope, traceHeaders: ByteBuffer(string: trace),
                content: content, contentSize: contentSize, arrivedAt: now,
                expiresAt: now.addingTimeInterval(TimeInterval(settings.maxQueueLifetime.components.seconds))
            )
            try await committer.enqueue(message)
            logger.info("\(body.queueID): from=<\(envelope.reversePath?.description ?? "")>, size=\(message.size), nrcpt=\(envelope.recipients.count), client=\(envelope.client.greetingName)[\(client)], status=queued")
            return session.enqueued(queueID: body.queueID)
        } catch {
            await body.discard()
            logger.error("\(body.queueID): queue write failed, status=refused (452 4.3.1): \(error)")
            return session.enqueueFailed()
        }
    }

    private func setTimeout(_ duration: Duration) {
        let gate = connection.gate
        connection.channel.channel.eventLoop.execute {
            gate.value.setTimeout(TimeAmount(duration))
        }
    }
}

extension ServerSession.Action {
    /// The reply every action carries.
    var reply: SMTPReply {
        switch self {
        case .reply(let reply), .replyAndClose(let reply), .beginData(let reply): reply
        case .enqueue: preconditionFailure("enqueue carries no reply")
        }
    }
}
