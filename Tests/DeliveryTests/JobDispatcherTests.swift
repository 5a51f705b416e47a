import Foundation
import MailQueue
import NIOCore
import SMTPProtocol
import Testing
@testable import Delivery

/// The dispatcher hands each job to one worker, keeps recipients from being in two jobs at once, and
/// shares its room between the feeder's claims and fresh mail from the group commit.
struct JobDispatcherTests {
    static func job(queueID: String, domain: String = "x.test", recipientIDs: [Int64]) -> DeliveryJob {
        DeliveryJob(messageID: 1, queueID: queueID, reversePath: "s@src.test", size: 100, arrivedAt: Date(),
                    expiresAt: Date().addingTimeInterval(3600), domain: domain,
                    recipients: recipientIDs.map { .init(id: $0, address: "r\($0)@\(domain)") }, content: .inline(ByteBuffer()))
    }

    @Test func aRecipientInHandIsNotDispatchedTwice() async {
        let dispatcher = JobDispatcher(capacity: 10, maximumPerDomain: 10)
        dispatcher.add([Self.job(queueID: "Q1", recipientIDs: [5])])
        dispatcher.add([Self.job(queueID: "Q1", recipientIDs: [5])])
        let first = await dispatcher.next()
        #expect(first?.recipients.map(\.id) == [5])
        #expect(dispatcher.room == 10)
    }

    /// SQLite gives the row id of a deleted last row to the next insert: a new message's recipient can
    /// carry the id of one a worker still holds. It must still be delivered (it once waited for its lease).
    @Test func aReusedRowIDOfAnotherMessageIsDispatched() async {
        let dispatcher = JobDispatcher(capacity: 10, maximumPerDomain: 10)
        dispatcher.add([Self.job(queueID: "Q1", recipientIDs: [5])])
        let held = await dispatcher.next()
        dispatcher.add([Self.job(queueID: "Q2", recipientIDs: [5])])
        let next = await dispatcher.next()
        #expect(held?.queueID == "Q1")
        #expect(next?.queueID == "Q2")
        #expect(next?.recipients.map(\.id) == [5])
    }

    @Test func reservationsShareTheRoomWithClaims() {
        let dispatcher = JobDispatcher(capacity: 4, maximumPerDomain: 4)
        #expect(dispatcher.reserve(upTo: 3) == 3)
        #expect(dispatcher.room == 1)
        #expect(dispatcher.reserve(upTo: 3) == 1)
        #expect(dispatcher.room == 0)
        dispatcher.cancelReservation(1)
        dispatcher.add([Self.job(queueID: "Q1", recipientIDs: [1]), Self.job(queueID: "Q2", recipientIDs: [2])], reserved: 3)
        #expect(dispatcher.room == 2)
    }

    @Test func aDomainGetsAtMostItsLimitAtOnce() async {
        let dispatcher = JobDispatcher(capacity: 10, maximumPerDomain: 1)
        dispatcher.add([Self.job(queueID: "Q1", domain: "a.test", recipientIDs: [1]),
                        Self.job(queueID: "Q2", domain: "a.test", recipientIDs: [2]),
                        Self.job(queueID: "Q3", domain: "b.test", recipientIDs: [3])])
        let first = await dispatcher.next()
        let second = await dispatcher.next()
        #expect(first?.queueID == "Q1")
        #expect(second?.queueID == "Q3")
        dispatcher.finished(first!)
        let third = await dispatcher.next()
        #expect(third?.queueID == "Q2")
    }

    @Test func shutdownReturnsUnstartedWorkAndRefusesMore() async {
        let dispatcher = JobDispatcher(capacity: 10, maximumPerDomain: 10)
        dispatcher.add([Self.job(queueID: "Q1", recipientIDs: [1, 2])])
        #expect(dispatcher.shutDown().sorted() == [1, 2])
        #expect(dispatcher.add([Self.job(queueID: "Q2", recipientIDs: [3])]) == [3])
        #expect(dispatcher.reserve(upTo: 5) == 0)
        let next = await dispatcher.next()
        #expect(next == nil)
    }
}
