import SagaCore
import Testing

/// Durations as definitions write them.
@Suite("Durations")
struct SagaDurationTests {
    struct ValidCase: Sendable, CustomTestStringConvertible {
        var text: String
        var milliseconds: Int64
        /// The shortest text for the same duration, which `description` gives.
        var printed: String
        init(_ text: String, _ milliseconds: Int64, printed: String? = nil) {
            self.text = text
            self.milliseconds = milliseconds
            self.printed = printed ?? text
        }
        var testDescription: String { text }
    }

    static let validCases: [ValidCase] = [
        .init("250ms", 250),
        .init("30s", 30_000),
        .init("5m", 300_000),
        .init("24h", 86_400_000, printed: "1d"),
        .init("30d", 2_592_000_000),
        .init("1h30m", 5_400_000),
        .init("1d2h3m4s5ms", 93_784_005),
        .init("3650d", 315_360_000_000),
    ]

    @Test("Valid durations parse to their milliseconds, and their description parses back", arguments: validCases)
    func valid(_ testCase: ValidCase) throws {
        let duration = try #require(SagaDuration(parsing: testCase.text))
        #expect(duration.milliseconds == testCase.milliseconds)
        #expect(duration.description == testCase.printed)
        #expect(SagaDuration(parsing: duration.description) == duration)
    }

    @Test(
        "Durations print in their shortest form",
        arguments: [("90m", "1h30m"), ("1000ms", "1s"), ("60s", "1m"), ("48h", "2d"), ("1s1s", "2s"), ("0s", "0s")])
    func shortestForm(_ text: String, _ printed: String) throws {
        let duration = try #require(SagaDuration(parsing: text))
        #expect(duration.description == printed)
        #expect(SagaDuration(parsing: printed) == duration)
    }

    @Test(
        "Everything else is refused",
        arguments: [
            "", "5", "s", "1.5s", "-1s", "5w", "99999999999999d", "3651d", "1h 30m", " 5s", "5s ", "5S", "+5s", "5sec",
            "1e3ms", "٥s",
        ])
    func invalid(_ text: String) {
        #expect(SagaDuration(parsing: text) == nil)
    }

    @Test("Durations order and convert by their length")
    func ordering() {
        #expect(SagaDuration.seconds(90) == SagaDuration(parsing: "1m30s"))
        #expect(SagaDuration.milliseconds(999) < .seconds(1))
        #expect(SagaDuration.hours(24) == .days(1))
        #expect(SagaDuration.minutes(60) == .hours(1))
        #expect(SagaDuration(milliseconds: -5) == .zero)
        #expect(SagaDuration.maximum == .days(3650))
    }
}
