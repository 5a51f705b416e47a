import Foundation

/// A lease that freshly accepted mail is stored under when the delivery engine takes it at once: the
/// recipients are written already claimed by `owner` until `expiresAt`, exactly as
/// ``QueueStore/claimDueWork(owner:now:lease:limit:recipientsPerJob:)`` would leave them, so that a crash
/// before the attempt ends loses nothing (the lease runs out, or the next start releases it).
public struct DeliveryLease: Sendable, Hashable {
    public var owner: String
    public var expiresAt: Date
    /// How many of the batch's messages (the first ones) are stored leased.
    public var messages: Int
    public var recipientsPerJob: Int

    public init(owner: String, expiresAt: Date, messages: Int, recipientsPerJob: Int) {
        self.owner = owner
        self.expiresAt = expiresAt
        self.messages = messages
        self.recipientsPerJob = recipientsPerJob
    }
}

/// The path from the group commit straight to the delivery workers. Without it, every new message would
/// cost a second write transaction (the claim) and a read of its text, which the committer already holds
/// in memory. The engine takes what it has room for; the rest waits in the queue for its feeder.
public protocol DeliveryHandoff: Sendable {
    /// Called before a batch of `count` messages is written: how many of them delivery takes, under
    /// which lease; `nil` when it takes none.
    func reserve(messages count: Int) -> DeliveryLease?
    /// Called once the batch has committed: the jobs of the leased messages, and how many messages of the
    /// batch were stored without a lease (due now, for the feeder). Runs in the committer's task, which
    /// waits for it: whatever it must still write (leases it cannot use) is written before the committer ends.
    func committed(_ jobs: [DeliveryJob], lease: DeliveryLease?, unleasedMessages: Int) async
    /// The batch did not commit: the reservation is given back.
    func cancel(_ lease: DeliveryLease)
}
