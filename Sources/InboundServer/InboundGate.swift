import NIOCore

/// The only handler between the socket and the session task. It passes bytes on as ``InboundEvent``s,
/// keeps the read timeout (the session task sets it: command or data timeout), and injects the shutdown
/// notice so that it arrives in order with the client's input.
final class InboundGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = InboundEvent

    private var timeout: TimeAmount
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { armTimer() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        armTimer()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        armTimer()
        context.fireChannelRead(wrapInboundOut(.bytes(unwrapInboundIn(data))))
    }

    /// Sets the timeout for the wait that starts now. Call on the event loop.
    func setTimeout(_ timeout: TimeAmount) {
        self.timeout = timeout
        armTimer()
    }

    /// Passes the shutdown notice to the session task. Call on the event loop.
    func requestShutdown() {
        guard let context else { return }
        context.fireChannelRead(wrapInboundOut(.shutdown))
        context.fireChannelReadComplete()
    }

    private func armTimer() {
        timer?.cancel()
        guard let context else { return }
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) { [weak self] in
            guard self != nil else { return }
            let context = loopBoundContext.value
            context.fireChannelRead(NIOAny(InboundEvent.timedOut))
            context.fireChannelReadComplete()
        }
    }
}
