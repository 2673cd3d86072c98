extension String {
    /// The parts joined, built with one allocation and no intermediate strings: cheaper than `+` or
    /// interpolation on the machine's hot path (idempotency keys and timer ids on every command).
    static func concatenating(_ parts: String...) -> String {
        var total = 0
        for part in parts { total += part.utf8.count }
        return String(unsafeUninitializedCapacity: total) { buffer in
            var offset = 0
            for part in parts {
                var part = part
                part.withUTF8 { bytes in
                    guard let source = bytes.baseAddress, let target = buffer.baseAddress else { return }
                    (target + offset).update(from: source, count: bytes.count)
                    offset += bytes.count
                }
            }
            return offset
        }
    }
}
