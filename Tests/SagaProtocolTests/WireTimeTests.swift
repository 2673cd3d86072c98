import SagaCore
import SagaProtocol
import Testing

@Suite("RFC 3339 times")
struct WireTimeTests {
    @Test(
        "known instants format as UTC with milliseconds",
        arguments: [
            (Int64(0), "1970-01-01T00:00:00.000Z"),
            (1_796_321_964_123, "2026-12-03T18:19:24.123Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ])
    func format(milliseconds: Int64, text: String) {
        let time = SagaTimestamp(millisecondsSinceEpoch: milliseconds)
        #expect(WireTime.format(time) == text)
        #expect(WireTime.parse(text) == time)
    }

    @Test("offsets, lower-case separators, a space, and fractions of any length are read")
    func parseVariants() {
        let instant = SagaTimestamp(millisecondsSinceEpoch: 1_796_321_964_000)
        #expect(WireTime.parse("2026-12-03T18:19:24Z") == instant)
        #expect(WireTime.parse("2026-12-03t18:19:24z") == instant)
        #expect(WireTime.parse("2026-12-03 18:19:24Z") == instant)
        #expect(WireTime.parse("2026-12-03T19:19:24+01:00") == instant)
        #expect(WireTime.parse("2026-12-03T13:49:24-04:30") == instant)
        #expect(WireTime.parse("2026-12-03T18:19:24.1Z")?.millisecondsSinceEpoch == 1_796_321_964_100)
        #expect(WireTime.parse("2026-12-03T18:19:24.123456789Z")?.millisecondsSinceEpoch == 1_796_321_964_123)
    }

    @Test(
        "what is not an RFC 3339 time is refused",
        arguments: [
            "", "2026-12-03", "2026-12-03T18:19:24", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z", "2026-12-03T24:00:00Z", "2026-12-03T18:60:00Z", "2026-12-03T18:19:24.Z",
            "2026-12-03T18:19:24+0100", "2026-12-03T18:19:24Z ", "26-12-03T18:19:24Z", "tomorrow",
        ])
    func refused(text: String) {
        #expect(WireTime.parse(text) == nil)
    }

    @Test("format and parse are inverse over four hundred years of instants")
    func roundTrip() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<20_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            // 1800-01-01 to 2200-01-01.
            let milliseconds = Int64((state >> 1) % 12_623_040_000_000) - 5_364_662_400_000
            let time = SagaTimestamp(millisecondsSinceEpoch: milliseconds)
            #expect(WireTime.parse(WireTime.format(time)) == time, "\(milliseconds)")
        }
    }
}
