/// A span of time in a saga definition, written as `"250ms"`, `"30s"`, `"5m"`, `"24h"`, `"30d"` or a
/// sum of those (`"1h30m"`). Held as whole milliseconds.
public struct SagaDuration: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The length in milliseconds; never negative.
    public var milliseconds: Int64

    /// A duration of `milliseconds`.
    public init(milliseconds: Int64) {
        self.milliseconds = max(0, milliseconds)
    }

    public static func milliseconds(_ value: Int64) -> SagaDuration { SagaDuration(milliseconds: value) }
    public static func seconds(_ value: Int64) -> SagaDuration { SagaDuration(milliseconds: value * 1000) }
    public static func minutes(_ value: Int64) -> SagaDuration { SagaDuration(milliseconds: value * 60_000) }
    public static func hours(_ value: Int64) -> SagaDuration { SagaDuration(milliseconds: value * 3_600_000) }
    public static func days(_ value: Int64) -> SagaDuration { SagaDuration(milliseconds: value * 86_400_000) }
    public static let zero = SagaDuration(milliseconds: 0)

    /// The longest duration a definition may name: 3650 days.
    public static let maximum = SagaDuration.days(3650)

    private static let units: [(suffix: String, milliseconds: Int64)] = [
        ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000),
    ]

    /// Parses `"250ms"`, `"30s"`, `"5m"`, `"24h"`, `"30d"`, or a sum such as `"1h30m"`.
    /// Returns `nil` for anything else, including an empty string, a missing unit, a negative or
    /// fractional number, or a value above ``maximum``.
    public init?(parsing text: String) {
        var total: Int64 = 0
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let digits = rest.prefix(while: { $0.isASCII && $0.isNumber })
            guard !digits.isEmpty, digits.count <= 12, let number = Int64(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let unitText = rest.prefix(while: { $0.isASCII && $0.isLetter })
            guard let unit = Self.units.first(where: { $0.suffix == unitText }) else { return nil }
            rest = rest.dropFirst(unitText.count)
            let (product, overflow) = number.multipliedReportingOverflow(by: unit.milliseconds)
            guard !overflow else { return nil }
            total += product
            guard total <= Self.maximum.milliseconds else { return nil }
        }
        self.init(milliseconds: total)
    }

    /// The shortest text that parses back to this duration, e.g. `"1h30m"` or `"0s"`.
    public var description: String {
        if milliseconds == 0 { return "0s" }
        var rest = milliseconds
        var text = ""
        for unit in Self.units.reversed() where rest >= unit.milliseconds {
            text += "\(rest / unit.milliseconds)\(unit.suffix)"
            rest %= unit.milliseconds
        }
        return text
    }

    public static func < (lhs: SagaDuration, rhs: SagaDuration) -> Bool { lhs.milliseconds < rhs.milliseconds }
}

extension SagaDuration: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let duration = SagaDuration(parsing: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a duration: \(text)")
        }
        self = duration
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// A point in time, in whole milliseconds since 1970-01-01T00:00:00Z.
///
/// The core never reads a clock: the caller passes `now` into every transition.
public struct SagaTimestamp: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// Milliseconds since the Unix epoch.
    public var millisecondsSinceEpoch: Int64

    public init(millisecondsSinceEpoch: Int64) {
        self.millisecondsSinceEpoch = millisecondsSinceEpoch
    }

    public init(from decoder: any Decoder) throws {
        millisecondsSinceEpoch = try decoder.singleValueContainer().decode(Int64.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(millisecondsSinceEpoch)
    }

    /// This time moved forward by `duration`.
    public func adding(_ duration: SagaDuration) -> SagaTimestamp {
        let (sum, overflow) = millisecondsSinceEpoch.addingReportingOverflow(duration.milliseconds)
        return SagaTimestamp(millisecondsSinceEpoch: overflow ? .max : sum)
    }

    public static func + (lhs: SagaTimestamp, rhs: SagaDuration) -> SagaTimestamp { lhs.adding(rhs) }

    public static func < (lhs: SagaTimestamp, rhs: SagaTimestamp) -> Bool {
        lhs.millisecondsSinceEpoch < rhs.millisecondsSinceEpoch
    }

    public var description: String { "\(millisecondsSinceEpoch)ms" }
}
