import NIOCore
import NIOSSL
import NIOTLS

/// The one handler between an SMTP socket and the task that runs the conversation, on the server and on
/// the client side alike. It passes bytes on as ``ConnectionEvent``s, keeps the read timeout (the task
/// sets it as the protocol state changes: RFC 5321 §4.5.3.2 gives each wait its own), and injects the
/// shutdown notice so that it arrives in order with the peer's input.
///
/// The timeout measures the peer's silence only: while the task does its own work (a commit, a spool
/// write) it stops the clock (``suspendTimeout()``), since reads pause then too (backpressure), and a peer
/// still sending would otherwise be timed out for the time we took. Time is the event loop's (`now`), so
/// tests drive it with an embedded loop.
public final class ConnectionGate: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ConnectionEvent

    private var timeout: TimeAmount
    /// When the wait times out: pushed forward by every read, without touching the timer.
    private var deadline: NIODeadline = .distantFuture
    /// The one scheduled check, and when it runs. It is rescheduled only when it runs early (the deadline
    /// moved on) or when a shorter timeout needs it sooner: a read costs a clock read, not a timer.
    private var timer: Scheduled<Void>?
    private var timerFiresAt: NIODeadline = .distantFuture
    private var context: ChannelHandlerContext?
    /// The task is busy with its own work: the peer is not being waited for.
    private var isSuspended = false

    public init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { armTimer() }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        armTimer()
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        armTimer()
        context.fireChannelRead(wrapInboundOut(.bytes(unwrapInboundIn(data))))
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            let version = (try? context.pipeline.syncOperations.nioSSL_tlsVersion()).flatMap { $0 }
            context.fireChannelRead(wrapInboundOut(.tlsEstablished(version: version.map(Self.name(of:)) ?? "TLS")))
            context.fireChannelReadComplete()
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOSSLError || error is BoringSSLError {
            // Reported in order with the input, as an event; the TLS handler closes the connection.
            context.fireChannelRead(wrapInboundOut(.tlsFailed(reason: "\(error)")))
            context.fireChannelReadComplete()
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }

    /// Adds a TLS handler in front of this gate: STARTTLS (RFC 3207) or implicit TLS (RFC 8314).
    /// Call on the event loop.
    public func startTLS(_ handler: any ChannelHandler) throws {
        guard let context else { return }
        try context.pipeline.syncOperations.addHandler(handler, position: .before(self))
    }

    static func name(of version: TLSVersion) -> String {
        switch version {
        case .tlsv1: "TLSv1"
        case .tlsv11: "TLSv1.1"
        case .tlsv12: "TLSv1.2"
        case .tlsv13: "TLSv1.3"
        }
    }

    /// Sets the timeout for the wait that starts now. Call on the event loop.
    public func setTimeout(_ timeout: TimeAmount) {
        self.timeout = timeout
        isSuspended = false
        armTimer()
    }

    /// Stops the clock while the task does its own work: no timeout fires, and reads do not start the clock,
    /// until ``resumeTimeout()`` or ``setTimeout(_:)``. Call on the event loop.
    public func suspendTimeout() {
        isSuspended = true
        deadline = .distantFuture
    }

    /// Starts the clock again after ``suspendTimeout()``: the current timeout runs from now. Call on the
    /// event loop.
    public func resumeTimeout() {
        isSuspended = false
        armTimer()
    }

    /// Passes the shutdown notice on. Call on the event loop.
    public func requestShutdown() {
        guard let context else { return }
        context.fireChannelRead(wrapInboundOut(.shutdown))
        context.fireChannelReadComplete()
    }

    /// Starts the wait's clock now: the timeout runs from this moment.
    private func armTimer() {
        guard let context, !isSuspended else { return }
        deadline = context.eventLoop.now + timeout
        if timer == nil || deadline < timerFiresAt { schedule(at: deadline) }
    }

    private func schedule(at when: NIODeadline) {
        timer?.cancel()
        guard let context else { return }
        timerFiresAt = when
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: when) { [weak self] in
            self?.timerFired()
        }
    }

    private func timerFired() {
        timer = nil
        timerFiresAt = .distantFuture
        guard let context, deadline != .distantFuture else { return }
        if context.eventLoop.now < deadline {
            // Input arrived since the check was scheduled: look again when the wait really ends.
            schedule(at: deadline)
            return
        }
        deadline = .distantFuture
        context.fireChannelRead(NIOAny(ConnectionEvent.timedOut))
        context.fireChannelReadComplete()
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        timerFiresAt = .distantFuture
    }
}
