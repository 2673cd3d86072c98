import Synchronization

/// A wait in a test that did not end in time.
public struct TimedOut: Error, CustomStringConvertible {
    /// What the test waited for.
    public var what: String
    /// How long it waited.
    public var timeout: Duration
    /// Whether the work was still running after it had been cancelled and given `grace` to stop.
    public var ignoredCancellation: Bool

    public init(what: String, timeout: Duration, ignoredCancellation: Bool = false) {
        self.what = what
        self.timeout = timeout
        self.ignoredCancellation = ignoredCancellation
    }

    public var description: String {
        "timed out after \(timeout) waiting for \(what)"
            + (ignoredCancellation ? " (and it went on after it was cancelled)" : "")
    }
}

/// Runs `body` with a deadline; throws ``TimedOut`` when it passes first.
///
/// At the deadline `body` is cancelled and given `grace` to stop, so that what it was using (a
/// consumer, a connection) is free again when this returns. A body that goes on after that is
/// left behind: a wait that never ends fails the test instead of hanging the whole run.
public func withDeadline<T: Sendable>(
    _ timeout: Duration, _ what: String, grace: Duration = .seconds(5),
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let work = Task { try await body() }
    let finished = await withTaskCancellationHandler {
        await first(of: work, within: timeout)
    } onCancel: {
        work.cancel()
    }
    if let finished { return try finished.get() }
    work.cancel()
    let stopped = await first(of: work, within: grace) != nil
    throw TimedOut(what: what, timeout: timeout, ignoredCancellation: !stopped)
}

/// The result of `work`, or nil when `timeout` passes first; `work` is not waited for beyond it.
private func first<T: Sendable>(of work: Task<T, any Error>, within timeout: Duration) async -> Result<T, any Error>? {
    await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, any Error>?, Never>) in
        let once = Mutex(Optional(continuation))
        let finish: @Sendable (Result<T, any Error>?) -> Void = { outcome in
            once.withLock { $0.take() }?.resume(returning: outcome)
        }
        let timer = Task {
            // Cancelled once the work finished first: `finish` has been called then.
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            finish(nil)
        }
        Task {
            finish(await work.result)
            timer.cancel()
        }
    }
}

/// Waits until `condition` holds, checking every 20 ms, for at most `timeout`.
public func eventually(
    _ what: String, timeout: Duration = .seconds(30), _ condition: @escaping @Sendable () async -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while !(await condition()) {
        guard ContinuousClock.now < deadline else { throw TimedOut(what: what, timeout: timeout) }
        try await Task.sleep(for: .milliseconds(20))
    }
}
