import Authentication
import Foundation
import LogEvents
import Logging
import MailQueue
import NIOCore
import NIOSSL
import PetrelConfig
import SMTPProtocol
import SMTPTransport

/// Runs one connection: frames the client's bytes, feeds the ``ServerSession`` state machine, performs
/// its actions, and writes the replies. Replies to pipelined commands are gathered and written together
/// once the buffered input is used up (RFC 2920 §3.1).
struct SessionDriver {
    let connection: AcceptedConnection
    let client: IPAddress
    /// The client's verified name, looked up beside the session (see ``ClientName``).
    let clientName: ClientName
    let settings: InboundSettings
    let listener: ListenerKind
    let committer: GroupCommitter
    let authenticator: Authenticator?
    let tlsContext: NIOSSLContext?
    let logger: Logger
    /// How long a failed AUTH waits before its `535`, to slow guessing down.
    var authFailureDelay: Duration = .seconds(1)

    private var allocator: ByteBufferAllocator { connection.channel.channel.allocator }
    private var readClock: ReadClock { ReadClock(gate: connection.gate, eventLoop: connection.channel.channel.eventLoop) }

    func run() async throws {
        try await connection.channel.executeThenClose { inbound, outbound in
            var conversation = Conversation(driver: self, outbound: outbound)
            try await conversation.greet()
            do {
                for try await event in inbound {
                    guard try await conversation.handle(event) else { return }
                }
            } catch {
                await conversation.discardMessage()
                throw error
            }
            // The client went away in the middle of a message: it was never acknowledged.
            await conversation.discardMessage()
        }
    }

    /// One connection's state between reads, and what the driver does for each kind of event: bytes are
    /// framed into commands or streamed into the message, replies gathered and written once per read.
    private struct Conversation {
        let driver: SessionDriver
        let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
        var session: ServerSession
        /// An idle session holds no buffer of its own: input and output fall back to one empty buffer,
        /// so a thousand idle connections do not keep a thousand read buffers (bench/memory).
        let empty: ByteBuffer
        var input: ByteBuffer
        var output: ByteBuffer
        var framer = CommandLineFramer()
        /// The message being received, between the `354` and the end of its data.
        var body: MessageBody?
        /// With implicit TLS (RFC 8314) the greeting waits for the handshake; after STARTTLS, so does
        /// everything else.
        var isAwaitingTLS: Bool
        var isShutdownRequested = false

        init(driver: SessionDriver, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
            self.driver = driver
            self.outbound = outbound
            let settings = driver.settings
            session = ServerSession(
                configuration: settings.sessionConfiguration(
                    for: driver.listener, hasTLS: driver.tlsContext != nil, hasUsers: driver.authenticator?.hasUsers ?? false
                ),
                clientAddress: driver.client.description,
                relayPolicy: settings.relayPolicy(for: driver.client)
            )
            empty = driver.allocator.buffer(capacity: 0)
            input = empty
            output = empty
            isAwaitingTLS = driver.listener == .submissions
        }

        mutating func greet() async throws {
            guard !isAwaitingTLS else { return }
            session.greetingReply().write(to: &output)
            try await outbound.write(output)
            output.clear()
        }

        mutating func discardMessage() async {
            if var current = body.take() { await current.discard() }
        }

        /// Handles one event; `false` when the connection is to close.
        mutating func handle(_ event: ConnectionEvent) async throws -> Bool {
            switch event {
            case .bytes(var bytes):
                // RFC 3207 §6: what arrives between STARTTLS and the handshake is thrown away.
                if isAwaitingTLS { return true }
                if input.readableBytes == 0 { input = bytes } else { input.writeBuffer(&bytes) }
            case .timedOut:
                let isInData = body != nil
                await discardMessage()
                session.timedOut().reply.write(to: &output)
                try await outbound.write(output)
                driver.logger.log(.info, .session(SessionEvent(client: "\(driver.client)", .timedOut(isInData: isInData))))
                return false
            case .shutdown:
                isShutdownRequested = true
            case .tlsEstablished(let version):
                guard isAwaitingTLS else { return true }
                isAwaitingTLS = false
                session.tlsEstablished(description: version)
                if driver.listener == .submissions {
                    session.greetingReply().write(to: &output)
                }
            case .tlsFailed(let reason):
                driver.logger.log(.info, .session(SessionEvent(client: "\(driver.client)", .tlsHandshakeFailed(reason: "\(reason)"))))
                return false
            }
            guard try await processInput() else { return false }
            return try await finishRead()
        }

        /// Uses up the buffered input: message text while a message is open, else command lines.
        /// `false` when the connection is to close.
        private mutating func processInput() async throws -> Bool {
            while !isAwaitingTLS {
                if body != nil {
                    guard try await receiveMessageText() else { return true }
                    continue
                }
                if isShutdownRequested { return true }
                guard let frame = framer.next(&input) else { return true }
                var action: ServerSession.Action
                switch frame {
                case .line(let line): action = session.receive(line: line)
                case .overlong: action = session.receiveOverlongLine()
                }
                if case .verifyCredentials(let user, let password) = action {
                    try await driver.flush(&output, outbound)
                    action = await driver.verify(user: user, password: password, session: &session)
                }
                guard try await perform(action) else { return false }
            }
            return true
        }

        /// Streams input into the open message; `true` when its end was reached and answered.
        private mutating func receiveMessageText() async throws -> Bool {
            // Taken out of `body` while it grows, so that its buffer has one owner and the new text is
            // appended in place, never copied with what came before it.
            guard var current = body.take() else { return false }
            let isFinished: Bool
            do {
                isFinished = try await current.consume(&input)
            } catch {
                await current.discard()
                throw error
            }
            guard isFinished else {
                body = current
                return false
            }
            driver.readClock.start(driver.settings.commandTimeout)
            try await answerEndOfData(&current)
            return true
        }

        /// Queues the finished message, or refuses it, and writes the answer.
        private mutating func answerEndOfData(_ current: inout MessageBody) async throws {
            switch session.dataFinished(current.summary) {
            case .enqueue(let envelope, let missing):
                try await driver.flush(&output, outbound)
                let action: ServerSession.Action
                if let error = current.storageError {
                    // The spool file could not be written: the message is refused, never half-kept.
                    driver.logger.log(.error, .messageRefused(MessageRefusedEvent(queueID: current.queueID, stage: .spool, error: "\(error)")))
                    InboundMetrics.rejected(code: 452)
                    action = session.enqueueFailed()
                } else {
                    // The client waits for our 250: the commit's time is not its silence.
                    action = await driver.readClock.stopped {
                        await driver.store(&current, envelope: envelope, missing: missing, session: &session)
                    }
                }
                action.reply.write(to: &output)
            case let action:
                await current.discard()
                InboundMetrics.rejected(code: action.reply.code)
                driver.logger.log(.info, .session(SessionEvent(client: "\(driver.client)", .messageRefused(reply: "\(action.reply)"))))
                action.reply.write(to: &output)
            }
        }

        /// Performs a command's action; `false` when the connection is to close.
        private mutating func perform(_ action: ServerSession.Action) async throws -> Bool {
            switch action {
            case .reply(let reply):
                if reply.code >= 400 { InboundMetrics.rejected(code: reply.code) }
                reply.write(to: &output)
            case .replyAndClose(let reply):
                reply.write(to: &output)
                try await outbound.write(output)
                return false
            case .beginData(let reply):
                reply.write(to: &output)
                try await driver.flush(&output, outbound)
                driver.readClock.start(driver.settings.dataTimeout)
                body = MessageBody(
                    queueID: QueueID.make(),
                    spoolDirectory: driver.committer.store.spoolDirectory,
                    readClock: driver.readClock,
                    decoder: DataDecoder(maximumSize: driver.settings.session.maximumMessageSize,
                                         lineEndingPolicy: driver.settings.session.lineEndingPolicy),
                    allocator: driver.allocator
                )
            case .startTLS(let reply):
                reply.write(to: &output)
                input.clear()
                isAwaitingTLS = true
                try await driver.startTLS(writing: output)
                output.clear()
            case .enqueue, .verifyCredentials:
                preconditionFailure("the session asked for \(action) out of turn")
            }
            return true
        }

        /// After a read is used up: the shutdown notice when no message is open, else the gathered
        /// replies (RFC 2920), and the buffers given back. `false` when the connection is to close.
        private mutating func finishRead() async throws -> Bool {
            if isShutdownRequested && body == nil {
                session.shuttingDown().reply.write(to: &output)
                try await outbound.write(output)
                return false
            }
            try await driver.flush(&output, outbound)
            output = empty
            if input.readableBytes == 0 {
                input = empty
            } else if input.readerIndex > 64 * 1024 {
                input.discardReadBytes()
            }
            return true
        }
    }

    private func flush(_ output: inout ByteBuffer, _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws {
        guard output.readableBytes > 0 else { return }
        try await outbound.write(output)
        output.clear()
    }

    /// Writes the replies that end with the `220` to STARTTLS and adds the TLS handler in front of the gate,
    /// in one event-loop task: a client may send its ClientHello as soon as it reads the `220`, and that
    /// must not be read before the handler is there (it would be taken for plaintext and thrown away, and
    /// the handshake would hang). The gate reports the end of the handshake.
    private func startTLS(writing replies: ByteBuffer) async throws {
        guard let tlsContext else { preconditionFailure("STARTTLS without a TLS context") }
        let gate = connection.gate
        let channel = connection.channel.channel
        try await channel.eventLoop.submit {
            // Written from the gate's place in the pipeline, so the bytes pass no TLS handler.
            let context = try channel.pipeline.syncOperations.context(handler: gate.value)
            context.writeAndFlush(NIOAny(replies), promise: nil)
            try gate.value.startTLS(NIOSSLServerHandler(context: tlsContext))
        }.get()
    }

    /// RFC 4954: checks the credentials off the event loop; a failure waits a moment before it is told.
    private func verify(user: String, password: String, session: inout ServerSession) async -> ServerSession.Action {
        guard let authenticator else { return session.authenticationFailed() }
        // A name that is no user's is not logged: it is often the password, typed into the wrong field.
        let loggableName = authenticator.loggableName(user)
        if authenticator.isThrottled(client.description) {
            logger.log(.warning, .session(SessionEvent(client: "\(client)", .authenticationThrottled(user: loggableName))))
            return session.authenticationFailed(throttled: true)
        }
        let account: User?
        do {
            account = try await authenticator.authenticate(name: user, password: password, from: client.description)
        } catch {
            // The password checks are saturated (a burst of AUTH): the client may try again later.
            logger.log(.warning, .session(SessionEvent(client: "\(client)", .authenticationUnavailable(user: loggableName))))
            return session.authenticationUnavailable()
        }
        if let account {
            logger.log(.info, .session(SessionEvent(client: "\(client)", .authenticated(user: account.name))))
            return session.authenticated(user: account.name, allowedSenders: account.allowedSenders)
        }
        logger.log(.warning, .session(SessionEvent(client: "\(client)", .authenticationFailed(user: loggableName))))
        InboundMetrics.authFailed()
        try? await Task.sleep(for: authFailureDelay)
        return session.authenticationFailed()
    }

    /// Writes the message to the queue and returns the session's answer: `250` once it is durable,
    /// `452 4.3.1` when it could not be stored.
    private func store(
        _ body: inout MessageBody, envelope: Envelope, missing: ServerSession.MissingHeaders, session: inout ServerSession
    ) async -> ServerSession.Action {
        var envelope = envelope
        envelope.client.verifiedName = clientName.verified
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
                queueID: body.queueID, envelope: envelope, authenticatedUser: envelope.client.authenticatedUser,
                traceHeaders: ByteBuffer(string: trace), content: content, contentSize: contentSize, arrivedAt: now,
                expiresAt: now.addingTimeInterval(settings.maxQueueLifetime.inSeconds)
            )
            try await committer.enqueue(message)
            logger.log(.info, .messageAccepted(MessageAcceptedEvent(
                queueID: body.queueID, sender: envelope.reversePath?.description ?? "", size: message.size,
                recipientCount: envelope.recipients.count, clientName: envelope.client.verifiedName, clientAddress: "\(client)",
                helo: envelope.client.greetingName, saslUsername: envelope.client.authenticatedUser, tls: envelope.client.tlsDescription
            )))
            InboundMetrics.messageAccepted(bytes: message.size)
            return session.enqueued(queueID: body.queueID)
        } catch {
            await body.discard()
            logger.log(.error, .messageRefused(MessageRefusedEvent(queueID: body.queueID, stage: .queue, error: "\(error)")))
            InboundMetrics.rejected(code: 452)
            return session.enqueueFailed()
        }
    }
}

extension ServerSession.Action {
    /// The reply every action but `enqueue` and `verifyCredentials` carries.
    var reply: SMTPReply {
        switch self {
        case .reply(let reply), .replyAndClose(let reply), .beginData(let reply), .startTLS(let reply): reply
        case .enqueue, .verifyCredentials: preconditionFailure("\(self) carries no reply")
        }
    }
}
