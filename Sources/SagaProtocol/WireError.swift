import SagaCore

/// Why a message could not be read: which message type, which field, and what was wrong with it.
/// Its ``description`` is the reason a dead-letter record carries.
public struct WireError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The message's CloudEvents type, when it was known.
    public var type: String?
    /// The field at fault, as a path (`error.retryable`, `payload`), or a header (`header ce_id`);
    /// `nil` when the message as a whole is at fault (not JSON, an unknown type).
    public var field: String?
    /// What was wrong.
    public var reason: String

    public init(type: String? = nil, field: String? = nil, reason: String) {
        self.type = type
        self.field = field
        self.reason = reason
    }

    public var description: String {
        var text = type.map { "\($0): " } ?? ""
        if let field { text += field.hasPrefix("header ") ? "\(field): " : "field \(field): " }
        return text + reason
    }

    func with(type: String) -> WireError {
        var error = self
        error.type = error.type ?? type
        return error
    }
}

/// Reads the members of one JSON object, naming the field in every error.
struct FieldReader {
    let members: [String: JSONValue]
    let path: String

    init(_ value: JSONValue, path: String = "") throws(WireError) {
        guard case .object(let members) = value else {
            throw WireError(field: path.isEmpty ? nil : path, reason: "expected an object, found \(value.typeName)")
        }
        self.members = members
        self.path = path
    }

    func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The member, or `nil` when it is missing or `null`.
    func optional(_ key: String) -> JSONValue? {
        guard let value = members[key], value != .null else { return nil }
        return value
    }

    func value(_ key: String) throws(WireError) -> JSONValue {
        guard let value = optional(key) else { throw WireError(field: name(key), reason: "missing") }
        return value
    }

    func string(_ key: String) throws(WireError) -> String {
        guard let string = try optionalString(key) else { throw WireError(field: name(key), reason: "missing") }
        return string
    }

    /// A string that must not be empty.
    func text(_ key: String) throws(WireError) -> String {
        let string = try string(key)
        guard !string.isEmpty else { throw WireError(field: name(key), reason: "must not be empty") }
        return string
    }

    func optionalString(_ key: String) throws(WireError) -> String? {
        guard let value = optional(key) else { return nil }
        guard case .string(let string) = value else {
            throw WireError(field: name(key), reason: "expected a string, found \(value.typeName)")
        }
        return string
    }

    func optionalText(_ key: String) throws(WireError) -> String? {
        guard let string = try optionalString(key) else { return nil }
        guard !string.isEmpty else { throw WireError(field: name(key), reason: "must not be empty") }
        return string
    }

    func integer(_ key: String) throws(WireError) -> Int {
        guard let integer = try optionalInteger(key) else { throw WireError(field: name(key), reason: "missing") }
        return integer
    }

    func optionalInteger(_ key: String) throws(WireError) -> Int? {
        guard let value = optional(key) else { return nil }
        switch value {
        case .integer(let integer) where Int(exactly: integer) != nil: return Int(integer)
        case .double(let double) where double.rounded() == double && Int(exactly: double) != nil: return Int(double)
        default: throw WireError(field: name(key), reason: "expected an integer, found \(value.typeName)")
        }
    }

    func bool(_ key: String) throws(WireError) -> Bool {
        guard let value = optional(key) else { throw WireError(field: name(key), reason: "missing") }
        guard case .bool(let bool) = value else {
            throw WireError(field: name(key), reason: "expected true or false, found \(value.typeName)")
        }
        return bool
    }

    func time(_ key: String) throws(WireError) -> SagaTimestamp {
        let text = try string(key)
        guard let time = WireTime.parse(text) else {
            throw WireError(field: name(key), reason: "expected an RFC 3339 time, found \"\(text.prefix(40))\"")
        }
        return time
    }

    func optionalTime(_ key: String) throws(WireError) -> SagaTimestamp? {
        guard optional(key) != nil else { return nil }
        return try time(key)
    }

    func oneOf<T: RawRepresentable<String>>(_ key: String, _: T.Type) throws(WireError) -> T
    where T: CaseIterable {
        let raw = try string(key)
        guard let value = T(rawValue: raw) else {
            let allowed = T.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
            throw WireError(field: name(key), reason: "expected one of \(allowed), found \"\(raw.prefix(40))\"")
        }
        return value
    }

    func object(_ key: String) throws(WireError) -> FieldReader {
        try FieldReader(try value(key), path: name(key))
    }

    func optionalObject(_ key: String) throws(WireError) -> FieldReader? {
        guard let value = optional(key) else { return nil }
        return try FieldReader(value, path: name(key))
    }
}

/// Builds a JSON object, leaving out what is `nil`.
struct ObjectBuilder {
    var members: [String: JSONValue] = [:]

    init(capacity: Int = 8) { members.reserveCapacity(capacity) }

    subscript(key: String) -> String? {
        get { nil }
        set { if let newValue { members[key] = .string(newValue) } }
    }

    subscript(key: String) -> Int? {
        get { nil }
        set { if let newValue { members[key] = .integer(Int64(newValue)) } }
    }

    subscript(key: String) -> Bool? {
        get { nil }
        set { if let newValue { members[key] = .bool(newValue) } }
    }

    subscript(key: String) -> JSONValue? {
        get { nil }
        set { if let newValue { members[key] = newValue } }
    }

    subscript(time key: String) -> SagaTimestamp? {
        get { nil }
        set { if let newValue { members[key] = .string(WireTime.format(newValue)) } }
    }

    var value: JSONValue { .object(members) }
}
