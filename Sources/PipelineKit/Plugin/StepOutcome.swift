/// What a step tells the runtime after handling a message. After an irreversible step (the
/// send) has succeeded, the outcome is `completed` whatever later steps answer: `finish`
/// ends the run, and `requeue` or `wait`, which would send the message again, are refused.
public enum StepOutcome: Sendable, Equatable {
    /// Go on with the next step.
    case next
    /// Stop here and acknowledge: the message needs no further work. `label` says why in metrics,
    /// events and pipeline tests (`.duplicate`: it was sent already; a plugin's own, e.g. `suppressed`).
    case finish(as: OutcomeLabel, String)
    /// Stop here and try the message again later without using up an attempt
    /// (nil: after the first backoff delay).
    case requeue(after: Duration?, reason: String)
    /// Not now: run this step again at `Wait.until`, without using up an attempt. The runtime
    /// parks the message in memory (or, for long waits, sends it round the source again).
    case wait(Wait)
    /// Stop here: the message was sent already, by an earlier attempt of its own whose outcome
    /// was in doubt and is now settled (e.g. by a delivery status). It ends as sent (`completed`).
    case alreadySent(String)
}
