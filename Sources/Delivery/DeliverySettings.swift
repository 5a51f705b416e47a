import PetrelConfig

/// The part of the configuration the delivery engine uses.
public struct DeliverySettings: Sendable {
    public var hostname: String
    public var workers: Int
    public var maximumConnectionsPerDomain: Int
    public var maximumRecipientsPerTransaction: Int
    public var retry: RetrySchedule
    public var maximumQueueLifetime: Duration
    /// `.zero`: no delay warnings.
    public var delayWarning: Duration
    public var timeouts: ClientTimeouts
    public var routes: [String: PetrelConfiguration.HostPort]
    public var smarthost: PetrelConfiguration.HostPort?
    public var mxPort: Int
    /// How long a claimed recipient stays leased: a crashed worker's recipients fall due again after it.
    public var lease: Duration = .seconds(15 * 60)
    /// The longest the scheduler sleeps before it looks at the queue again.
    public var idlePoll: Duration = .seconds(5)

    public init(_ configuration: PetrelConfiguration) {
        let delivery = configuration.delivery
        hostname = configuration.hostname
        workers = delivery.workers
        maximumConnectionsPerDomain = delivery.maxConnectionsPerDomain
        maximumRecipientsPerTransaction = delivery.maxRecipientsPerTransaction
        retry = RetrySchedule(minimum: delivery.retryMin, maximum: delivery.retryMax)
        maximumQueueLifetime = delivery.maxQueueLifetime
        delayWarning = delivery.delayWarning
        timeouts = ClientTimeouts(
            connect: delivery.connectTimeout,
            command: delivery.commandTimeout,
            dataInitiation: min(delivery.commandTimeout, .seconds(120)),
            dataTermination: delivery.dataTimeout
        )
        routes = configuration.routes
        smarthost = configuration.delivery.smarthost
        mxPort = delivery.mxPort
    }
}
