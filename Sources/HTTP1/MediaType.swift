/// A parsed media type (RFC 9110 §8.3.1):
///
///     media-type = type "/" subtype parameters
///     parameters = *( OWS ";" OWS [ parameter ] )
///     parameter  = parameter-name "=" parameter-value
///     parameter-value = ( token / quoted-string )
///
/// Type, subtype and parameter names are lowercased; values are kept (quoted-strings unescaped).
package struct MediaType: Hashable, Sendable, CustomStringConvertible {
    package var type: String
    package var subtype: String
    package var parameters: [(name: String, value: String)]

    package init(type: String, subtype: String, parameters: [(name: String, value: String)] = []) {
        self.type = type
        self.subtype = subtype
        self.parameters = parameters
    }

    /// `type/subtype`, lowercased.
    package var essence: String { "\(type)/\(subtype)" }

    /// The value of parameter `name` (case-insensitive); nil if absent.
    package func parameter(_ name: String) -> String? {
        parameters.first { asciiCaseInsensitiveEquals($0.name, name) }?.value
    }

    package var description: String {
        ([essence] + parameters.map { "\($0.name)=\(quoteIfNeeded($0.value))" }).joined(separator: "; ")
    }

    package static func == (a: MediaType, b: MediaType) -> Bool {
        a.type == b.type && a.subtype == b.subtype && a.parameters.map(\.name) == b.parameters.map(\.name)
            && a.parameters.map(\.value) == b.parameters.map(\.value)
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(type)
        hasher.combine(subtype)
        for p in parameters {
            hasher.combine(p.name)
            hasher.combine(p.value)
        }
    }

    /// Parses a Content-Type value; nil if it is malformed.
    package init?(parsing value: String) {
        guard case .success(let m) = MediaType.parse(value) else { return nil }
        self = m
    }

    /// Parses a Content-Type value, or says what is wrong with it (without echoing it: the reason is
    /// safe to put in a problem body whatever the client sent).
    package static func parse(_ value: String) -> Result<MediaType, MediaTypeError> {
        var scanner = ParameterScanner(Array(value.utf8))
        scanner.skipOWS()
        if scanner.atEnd { return .failure(MediaTypeError("it is empty")) }
        guard let type = scanner.token() else {
            return .failure(MediaTypeError("it does not start with a type token (expected type/subtype)"))
        }
        guard scanner.consume(UInt8(ascii: "/")) else {
            return .failure(MediaTypeError("'/' and a subtype must follow the type (expected type/subtype)"))
        }
        guard let subtype = scanner.token() else {
            return .failure(MediaTypeError("the subtype after '/' is missing or not a token"))
        }
        switch scanner.parametersOrReason() {
        case .failure(let e): return .failure(e)
        case .success(let parameters):
            return .success(MediaType(type: type.lowercased(), subtype: subtype.lowercased(), parameters: parameters))
        }
    }
}

/// Why a media type did not parse: a short phrase completing "the Content-Type is malformed: …".
package struct MediaTypeError: Error, Hashable, Sendable {
    package var reason: String
    package init(_ reason: String) { self.reason = reason }
}

private func quoteIfNeeded(_ s: String) -> String {
    if s.isHTTPToken { return s }
    var out = "\""
    for c in s {
        if c == "\"" || c == "\\" { out.append("\\") }
        out.append(c)
    }
    return out + "\""
}

/// A small scanner for `*( OWS ";" OWS name "=" value )` lists (media types, Content-Disposition).
struct ParameterScanner {
    let bytes: [UInt8]
    var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { index >= bytes.count }

    mutating func skipOWS() {
        while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 }
    }

    mutating func consume(_ b: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == b else { return false }
        index += 1
        return true
    }

    mutating func token() -> String? {
        let start = index
        while index < bytes.count, ByteClass.isToken(bytes[index]) { index += 1 }
        return index > start ? String(decoding: bytes[start..<index], as: UTF8.self) : nil
    }

    /// quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE, unescaped.
    mutating func quotedString() -> String? {
        guard consume(UInt8(ascii: "\"")) else { return nil }
        var out: [UInt8] = []
        while index < bytes.count {
            let b = bytes[index]
            index += 1
            if b == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            if b == UInt8(ascii: "\\") {
                guard index < bytes.count, ByteClass.isQuotedPairChar(bytes[index]) else { return nil }
                out.append(bytes[index])
                index += 1
            } else if ByteClass.isQdtext(b) {
                out.append(b)
            } else {
                return nil
            }
        }
        return nil
    }

    /// The parameter list up to the end; nil if malformed or if a name repeats.
    mutating func parameters() -> [(name: String, value: String)]? {
        try? parametersOrReason().get()
    }

    /// The parameter list up to the end, or what is wrong with it.
    mutating func parametersOrReason() -> Result<[(name: String, value: String)], MediaTypeError> {
        var out: [(name: String, value: String)] = []
        while true {
            skipOWS()
            if atEnd { return .success(out) }
            guard consume(UInt8(ascii: ";")) else {
                return .failure(MediaTypeError("expected ';' before a parameter at byte \(index + 1)"))
            }
            skipOWS()
            if atEnd { return .success(out) }
            // Empty parameters ("a/b;;c=d") are allowed by the grammar.
            if index < bytes.count, bytes[index] == UInt8(ascii: ";") { continue }
            guard let name = token() else {
                return .failure(MediaTypeError("a parameter name is missing or not a token at byte \(index + 1)"))
            }
            let lower = name.lowercased()
            guard consume(UInt8(ascii: "=")) else {
                return .failure(MediaTypeError("parameter '\(lower.truncatedForEcho)' has no '=value'"))
            }
            let value: String
            if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                guard let q = quotedString() else {
                    return .failure(MediaTypeError("the quoted value of parameter '\(lower.truncatedForEcho)' is malformed or unterminated"))
                }
                value = q
            } else {
                guard let t = token() else {
                    return .failure(MediaTypeError("parameter '\(lower.truncatedForEcho)' has an empty or non-token value (quote it)"))
                }
                value = t
            }
            if out.contains(where: { $0.name == lower }) {
                return .failure(MediaTypeError("parameter '\(lower.truncatedForEcho)' is given twice"))
            }
            out.append((lower, value))
        }
    }
}
