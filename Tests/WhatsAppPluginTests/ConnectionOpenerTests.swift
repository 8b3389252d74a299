import Testing
import TestSupport
@testable import WhatsAppPlugin

/// One send at a time opens the connection to the Cloud API; those that come meanwhile wait for
/// it and take a new turn (SPEC 8: sends queued behind a connection being opened would go together).
struct ConnectionOpenerTests {
    @Test func theFirstSendOpensAloneAndThoseThatCameMeanwhileAreToldTheyWaited() async throws {
        let opener = ConnectionOpener(idleTimeout: .seconds(60))
        #expect(await opener.enter() == .opening)
        let second = Task { await opener.enter() }
        let third = Task { await opener.enter() }
        try await poll("two sends waiting") { opener.waiting == 2 }
        opener.ended(.opening, answered: true)
        #expect(await second.value == .waited)
        #expect(await third.value == .waited)
        #expect(await opener.enter() == .open, "answered: a connection is open")
    }

    @Test func anOpeningWithoutAnAnswerLetsTheNextSendOpen() async throws {
        let opener = ConnectionOpener(idleTimeout: .seconds(60))
        #expect(await opener.enter() == .opening)
        let waiter = Task { await opener.enter() }
        try await poll("a send waiting") { opener.waiting == 1 }
        opener.ended(.opening, answered: false)
        #expect(await waiter.value == .waited)
        #expect(await opener.enter() == .opening, "none open: the next send opens one")
    }

    @Test func aSendThatFailsWithoutAnAnswerClosesWhatWasOpen() async {
        let opener = ConnectionOpener(idleTimeout: .seconds(60))
        #expect(await opener.enter() == .opening)
        opener.ended(.opening, answered: true)
        #expect(await opener.enter() == .open)
        opener.ended(.open, answered: false)
        #expect(await opener.enter() == .opening)
    }

    @Test func aConnectionIdleForThePoolsTimeoutIsOpenedAgain() async {
        let opener = ConnectionOpener(idleTimeout: .zero)
        #expect(await opener.enter() == .opening)
        opener.ended(.opening, answered: true)
        #expect(await opener.enter() == .opening, "the pool may have closed it")
    }

    @Test func aWaitingSendReturnsWhenItsTaskIsCancelled() async throws {
        let opener = ConnectionOpener(idleTimeout: .seconds(60))
        #expect(await opener.enter() == .opening)
        let waiter = Task { await opener.enter() }
        try await poll("a send waiting") { opener.waiting == 1 }
        waiter.cancel()
        #expect(await waiter.value == .waited)
        #expect(opener.waiting == 0)
    }
}
