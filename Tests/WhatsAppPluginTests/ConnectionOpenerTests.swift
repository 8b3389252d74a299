import Testing
import TestSupport
@testable import WhatsAppPlugin

/// One send at a time opens the connection to the Cloud API; those that come meanwhile wait for
/// it and take a new turn (SPEC 8: sends queued behind a connection being opened would go together).
struct ConnectionOpenerTests {
    @Test func theFirstSendOpensAloneAndThoseThatCameMeanwhileAreToldTheyWaited() async throws {
        let opener = ConnectionOpener(openFor: .seconds(60))
        #expect(await opener.enter() == .opening)
        let second = Task { await opener.enter() }
        let third = Task { await opener.enter() }
        try await poll("two sends waiting") { opener.waiting == 2 }
        opener.ended(.opening, connectionOpen: true)
        #expect(await second.value == .waited)
        #expect(await third.value == .waited)
        #expect(await opener.enter() == .open, "answered: a connection is open")
    }

    @Test func sendsWaitingGoOnOnceAnotherSendFoundAConnectionOpenBeforeTheOpeningOneEnded() async throws {
        let opener = ConnectionOpener(openFor: .seconds(60))
        #expect(await opener.enter() == .opening)
        let waiter = Task { await opener.enter() }
        try await poll("a send waiting") { opener.waiting == 1 }
        // A send that entered while a connection was open (before it was taken as closed) is answered.
        opener.ended(.open, connectionOpen: true)
        #expect(await waiter.value == .waited)
        #expect(await opener.enter() == .open)
    }

    @Test func anOpeningWithoutAnAnswerLetsTheNextSendOpen() async throws {
        let opener = ConnectionOpener(openFor: .seconds(60))
        #expect(await opener.enter() == .opening)
        let waiter = Task { await opener.enter() }
        try await poll("a send waiting") { opener.waiting == 1 }
        opener.ended(.opening, connectionOpen: false)
        #expect(await waiter.value == .waited)
        #expect(await opener.enter() == .opening, "none open: the next send opens one")
    }

    @Test func aSendThatFailsWithoutAnAnswerClosesWhatWasOpen() async {
        let opener = ConnectionOpener(openFor: .seconds(60))
        #expect(await opener.enter() == .opening)
        opener.ended(.opening, connectionOpen: true)
        #expect(await opener.enter() == .open)
        opener.ended(.open, connectionOpen: false)
        #expect(await opener.enter() == .opening)
    }

    @Test func aConnectionNotUsedForItsTimeIsOpenedAgain() async {
        let opener = ConnectionOpener(openFor: .zero)
        #expect(await opener.enter() == .opening)
        opener.ended(.opening, connectionOpen: true)
        #expect(await opener.enter() == .opening, "it may have been closed")
    }

    @Test func aWaitingSendReturnsWhenItsTaskIsCancelled() async throws {
        let opener = ConnectionOpener(openFor: .seconds(60))
        #expect(await opener.enter() == .opening)
        let waiter = Task { await opener.enter() }
        try await poll("a send waiting") { opener.waiting == 1 }
        waiter.cancel()
        #expect(await waiter.value == .waited)
        #expect(opener.waiting == 0)
    }
}
