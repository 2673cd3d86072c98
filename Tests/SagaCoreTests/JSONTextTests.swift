import Foundation
import PropertyBased
import SagaCore
import Testing

/// The fast JSON text codec: JSON values, and saga states against their `Codable` form.
@Suite("JSON text")
struct JSONTextTests {
    static let values: [JSONValue] = [
        .null, true, false, 0, -1, 42, .integer(.max), .integer(.min), 0.5, -2.0, 1e-7, 1.5e300, "",
        "plain", "quote \" backslash \\ slash / newline \n tab \t nul \u{0} bell \u{7}", "ünïcödé €", "😀 𝄞",
        [], [1, "two", [3.0, nil]], [:], ["a": 1, "b": ["c": [true, false, nil]], "": "empty key", "é": "x"],
    ]

    @Test("values survive writing and parsing", arguments: values)
    func roundTrip(_ value: JSONValue) throws {
        #expect(try JSONValue(parsing: value.jsonText) == value)
        // Foundation reads what the writer wrote as the same value, except that it reads a double
        // without a fraction ("2.0") as an integer.
        if !value.jsonText.contains(".0") {
            #expect(try JSONDecoder().decode(JSONValue.self, from: Data(value.jsonText.utf8)) == value)
        }
    }

    @Test(
        "text is read as JSON says",
        arguments: [
            (" {\"a\" : [1, 2.5, -0, 1E3, 2e-2, true]} ", ["a": [1, 2.5, 0, 1000.0, 0.02, true]] as JSONValue),
            ("\"\\u00e9\\u20AC\\ud83d\\ude00\\/\"", "é€😀/"),
            ("123456789012345678901234567890", .double(123456789012345678901234567890.0)),
            ("[]", []), ("{}", [:]), ("null", .null),
            ("{\"k\":1,\"k\":2}", ["k": 2]),
        ] as [(String, JSONValue)])
    func parses(_ text: String, _ expected: JSONValue) throws {
        #expect(try JSONValue(parsing: text) == expected)
    }

    @Test(
        "malformed text is refused with the place of the problem",
        arguments: [
            "", " ", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul", "[1 2]", "{\"a\" 1}",
            "{a:1}", "\"unterminated", "\"bad \\x escape\"", "\"\\ud800\"", "\"\\udc00\"", "\"tab\there\"", "[1] 2",
            "'single'", "NaN", "[" + String(repeating: "[", count: 300) + String(repeating: "]", count: 301),
        ])
    func refuses(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: text) }
    }

    @Test("a refusal names the byte where the text went wrong")
    func errorOffset() {
        let error = #expect(throws: JSONParseError.self) { try JSONValue(parsing: "[1, 2") }
        #expect(error?.offset == 5)
        let deep = String(repeating: "[", count: 20) + String(repeating: "]", count: 20)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: deep, maximumDepth: 10) }
        #expect(throws: Never.self) { try JSONValue(parsing: deep, maximumDepth: 20) }
    }

    @Test("saga states: the fast form and the Codable form read each other, over generated sagas")
    func sagaStates() async {
        await propertyCheck(count: 300, input: SagaMachinePropertyTests.inputs) { input in
            let simulation = Simulation(input)
            var states = simulation.records.map(\.after) + [simulation.records.first?.before].compactMap { $0 }
            // Richer documents than the simulation's replies: every kind of value, escapes, nesting.
            let values = Self.values
            for (index, state) in states.enumerated() where index % 3 == 0 {
                var rich = state
                rich.input = values[(index + input.choices.count) % values.count]
                rich.results["extra"] = values[(index * 7 + 3) % values.count]
                rich.signals["approval"] = ["approved": true, "note": values[(index * 5 + 1) % values.count]]
                states.append(rich)
            }
            for state in states {
                let fast = state.jsonText
                #expect(try SagaInstance(jsonText: fast) == state)
                if !fast.contains(".0") {
                    // (Foundation reads a double without a fraction, "2.0", as an integer.)
                    #expect(try JSONDecoder().decode(SagaInstance.self, from: Data(fast.utf8)) == state)
                }
                let codable = String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
                if !fast.contains(".0") {
                    // (Foundation writes a double without a fraction as "2", an integer to any reader.)
                    #expect(try SagaInstance(jsonText: codable) == state)
                }
                #expect(state.jsonDepth <= SagaInstance.maximumStateDepth)
            }
        }
    }

    @Test("the stored state leaves out members at their usual value; a state with every member still reads")
    func compactState() throws {
        let saga = SagaHarness(Definitions.threeSteps).saga
        let text = saga.jsonText
        for omitted in [
            "attemptBudgetStart", "compensationAttempt", "executeGeneration", "pastPivot", "bufferedSignals",
            "seenSignalIDs", "results",
        ] {
            #expect(!text.contains("\"\(omitted)\""), "\(omitted) is at its usual value")
        }
        #expect(try SagaInstance(jsonText: text) == saga)
        #expect(try JSONDecoder().decode(SagaInstance.self, from: Data(text.utf8)) == saga)
        // The form written before members were left out: every member present.
        let full = String(decoding: try JSONEncoder().encode(saga), as: UTF8.self)
        #expect(full.contains("\"attemptBudgetStart\":0") && full.contains("\"pastPivot\":false"))
        #expect(try SagaInstance(jsonText: full) == saga)
        #expect(text.utf8.count < full.utf8.count)
    }

    @Test("a damaged state is refused naming the field")
    func damagedState() throws {
        let saga = SagaHarness(Definitions.threeSteps).saga
        guard case .object(var members) = try JSONValue(parsing: saga.jsonText) else {
            Issue.record("a state is an object")
            return
        }
        guard case .array(var steps) = members["steps"], case .object(var step) = steps[1] else {
            Issue.record("a state has steps")
            return
        }
        step["status"] = "sleepy"
        steps[1] = .object(step)
        members["steps"] = .array(steps)
        let error = #expect(throws: SagaStateDecodingError.self) {
            try SagaInstance(jsonText: JSONValue.object(members).jsonText)
        }
        #expect(error?.description == "steps[1].status: unknown value 'sleepy'")
        step["status"] = "pending"
        steps[1] = .object(step)
        members["steps"] = .array(steps)
        members["cursor"] = "one"
        let second = #expect(throws: SagaStateDecodingError.self) {
            try SagaInstance(jsonText: JSONValue.object(members).jsonText)
        }
        #expect(second?.path == "cursor")
    }
}
