import Foundation

/// How often, and how far apart, an action is tried.
public struct RetryPolicy: Sendable, Hashable {
    /// How the delay between attempts grows.
    public enum Backoff: String, Sendable, Hashable, CaseIterable {
        /// Every delay is `initial`.
        case fixed
        /// The delay after attempt *n* is `initial × n`.
        case linear
        /// The delay after attempt *n* is `initial × multiplier^(n-1)`.
        case exponential
    }

    /// The number of attempts in all, the first included; at least 1.
    public var maxAttempts: Int
    /// How the delay grows.
    public var backoff: Backoff
    /// The delay after the first failed attempt.
    public var initialDelay: SagaDuration
    /// The longest delay; no cap when `nil`.
    public var maxDelay: SagaDuration?
    /// The growth factor of exponential backoff; at least 1.
    public var multiplier: Double
    /// The fraction (0...1) by which a delay is spread at random, up or down.
    public var jitter: Double

    public init(
        maxAttempts: Int,
        backoff: Backoff = .exponential,
        initialDelay: SagaDuration = .seconds(1),
        maxDelay: SagaDuration? = .minutes(5),
        multiplier: Double = 2,
        jitter: Double = 0
    ) {
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// The default for a step's action: 3 attempts, exponential from 1 s, at most 1 min, ±20 % jitter.
    public static let defaultExecute = RetryPolicy(
        maxAttempts: 3, backoff: .exponential, initialDelay: .seconds(1), maxDelay: .minutes(1), multiplier: 2,
        jitter: 0.2)

    /// The default for a compensation: 10 attempts, exponential from 1 s, at most 5 min, ±20 % jitter.
    /// Compensations must finish, so they get a bigger budget than actions.
    public static let defaultCompensate = RetryPolicy(
        maxAttempts: 10, backoff: .exponential, initialDelay: .seconds(1), maxDelay: .minutes(5), multiplier: 2,
        jitter: 0.2)

    /// The delay before attempt `failedAttempt + 1`, where `unit` is a number in `0..<1` that spreads
    /// the delay by ``jitter``. The caller derives `unit` deterministically (see ``Jitter``).
    public func delay(afterAttempt failedAttempt: Int, unit: Double) -> SagaDuration {
        let attempt = Double(max(1, failedAttempt))
        let base = Double(initialDelay.milliseconds)
        var milliseconds: Double
        switch backoff {
        case .fixed: milliseconds = base
        case .linear: milliseconds = base * attempt
        case .exponential: milliseconds = base * pow(multiplier, attempt - 1)
        }
        let cap = Double(maxDelay?.milliseconds ?? SagaDuration.maximum.milliseconds)
        milliseconds = min(milliseconds, cap)
        if jitter > 0 {
            milliseconds *= 1 + jitter * (2 * unit - 1)
            milliseconds = min(max(0, milliseconds), cap)
        }
        guard milliseconds.isFinite else { return SagaDuration(milliseconds: Int64(cap)) }
        return SagaDuration(milliseconds: Int64(milliseconds.rounded()))
    }
}

/// Deterministic jitter: a number in `0..<1` derived from the saga, step, action and attempt, so the
/// same transition always gives the same delay and different sagas spread out.
public enum Jitter {
    /// A value in `0..<1` from a 64-bit FNV-1a hash of `parts`, mixed with SplitMix64's finaliser.
    public static func unit(_ parts: String...) -> Double {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for part in parts {
            for byte in part.utf8 {
                hash ^= UInt64(byte)
                hash &*= 0x0000_0100_0000_01b3
            }
            hash ^= 0xff
            hash &*= 0x0000_0100_0000_01b3
        }
        hash ^= hash >> 30
        hash &*= 0xbf58_476d_1ce4_e5b9
        hash ^= hash >> 27
        hash &*= 0x94d0_49bb_1331_11eb
        hash ^= hash >> 31
        return Double(hash >> 11) / Double(UInt64(1) << 53)
    }
}
