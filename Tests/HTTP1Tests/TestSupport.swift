import HTTP1
import Testing

// MARK: - Deterministic randomness

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough to pick split points.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// FNV-1a, to derive a per-input seed so each case gets its own (fixed) split points.
func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes {
        h ^= UInt64(b)
        h &*= 0x0000_0100_0000_01B3
    }
    return h
}

extension Array where Element == UInt8 {
    init(_ string: String) { self = Array(string.utf8) }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

// MARK: - Outcome of parsing a stream

/// One request as the caller sees it: the head, the body pieces joined, and whether `.end` came.
struct ParsedMessage: Equatable, CustomStringConvertible {
    var head: RequestHead
    var body: [UInt8]
    var complete: Bool

    var description: String {
        "\(head.method) \(head.target) \(head.version) keepAlive=\(head.keepAlive) framing=\(head.framing) "
            + "body=\(body.count)B complete=\(complete)"
    }
}

/// Everything the parser produced for a stream.
struct Outcome: Equatable, CustomStringConvertible {
    var messages: [ParsedMessage] = []
    var error: ParseError?
    /// The parser had no partial message pending at the end (nothing buffered mid-request).
    var idle: Bool = true

    var completeCount: Int { messages.filter(\.complete).count }

    var description: String {
        "messages: [\(messages.map(\.description).joined(separator: "; "))] error: \(error.map(\.description) ?? "none") idle: \(idle)"
    }
}

/// Drives a parser the way a server would, through `next(_:)`.
///
/// Every fragment is handed over as a window into a larger buffer with guard bytes on both sides
/// (NIO's ByteToMessageDecoderVerifier trick), so a parser that reads outside its window trips
/// the debug bounds check of `UnsafeRawBufferPointer`.
func runParser(
    fragments: [[UInt8]],
    limits: ParserLimits = ParserLimits(),
    options: ParserOptions = ParserOptions(),
    bodyLimit: ((RequestHead) -> Int?)? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) -> Outcome {
    var parser = RequestParser(limits: limits, options: options)
    var outcome = Outcome()
    var current: ParsedMessage?
    let guardBytes = [UInt8](repeating: 0xEE, count: 8)
    outer: for fragment in fragments {
        let guarded = guardBytes + fragment + guardBytes
        var offset = 0
        while true {
            let step = guarded.withUnsafeBytes { raw in
                parser.next(UnsafeRawBufferPointer(rebasing: raw[(8 + offset)..<(8 + fragment.count)]))
            }
            #expect(step.consumed >= 0 && offset + step.consumed <= fragment.count, sourceLocation: sourceLocation)
            offset += step.consumed
            guard let event = step.event else {
                #expect(offset == fragment.count, "needMore must consume the whole input", sourceLocation: sourceLocation)
                break
            }
            switch event {
            case .head(let head):
                #expect(current == nil, "head while a message is open", sourceLocation: sourceLocation)
                current = ParsedMessage(head: head, body: [], complete: false)
                if let limit = bodyLimit?(head) { parser.bodyLimit = limit }
            case .body(let piece):
                #expect(!piece.isEmpty, "empty body event", sourceLocation: sourceLocation)
                #expect(current != nil, "body outside a message", sourceLocation: sourceLocation)
                current?.body += piece
            case .end:
                #expect(current != nil, "end outside a message", sourceLocation: sourceLocation)
                if var message = current {
                    message.complete = true
                    outcome.messages.append(message)
                }
                current = nil
            case .error(let error):
                outcome.error = error
                // A dead parser keeps reporting the same error and consumes nothing.
                let again = parser.next(UnsafeRawBufferPointer(start: nil, count: 0))
                #expect(again == ParseStep(consumed: 0, event: .error(error)), sourceLocation: sourceLocation)
                #expect(parser.error == error, sourceLocation: sourceLocation)
                break outer
            }
        }
    }
    if let open = current { outcome.messages.append(open) }
    outcome.idle = outcome.error == nil && parser.isIdle
    return outcome
}

/// Drives a parser through the buffered `feed(_:)` convenience.
func runFeed(
    fragments: [[UInt8]],
    limits: ParserLimits = ParserLimits(),
    options: ParserOptions = ParserOptions(),
    bodyLimit: ((RequestHead) -> Int?)? = nil
) -> Outcome {
    var parser = RequestParser(limits: limits, options: options)
    var outcome = Outcome()
    var current: ParsedMessage?
    outer: for fragment in fragments {
        var events = parser.feed(fragment)
        while true {
            for event in events {
                switch event {
                case .head(let head):
                    current = ParsedMessage(head: head, body: [], complete: false)
                    if let limit = bodyLimit?(head) { parser.bodyLimit = limit }
                case .body(let piece):
                    current?.body += piece
                case .end:
                    if var message = current {
                        message.complete = true
                        outcome.messages.append(message)
                    }
                    current = nil
                case .error(let error):
                    outcome.error = error
                    break outer
                }
            }
            guard case .head = events.last else { break }
            events = parser.feed([])
        }
    }
    if let open = current { outcome.messages.append(open) }
    outcome.idle = outcome.error == nil && parser.isIdle
    return outcome
}

/// Random split points, fixed by `rng`.
func randomSplit(_ input: [UInt8], using rng: inout SplitMix64) -> [[UInt8]] {
    guard input.count > 1 else { return [input] }
    let cuts = Int(rng.next() % UInt64(min(input.count, 12))) + 1
    var points = Set<Int>()
    for _ in 0..<cuts { points.insert(Int(rng.next() % UInt64(input.count - 1)) + 1) }
    var fragments: [[UInt8]] = []
    var start = 0
    for p in points.sorted() {
        fragments.append(Array(input[start..<p]))
        start = p
    }
    fragments.append(Array(input[start...]))
    return fragments
}

/// The verifier: parses `input` (a) whole, (b) one byte per call, (d) at random split points
/// (fixed seed), and through `feed(_:)`, and checks that all agree. Returns the whole-input outcome.
/// (c), concatenation, is done by the callers that own a list of cases.
@discardableResult
func verify(
    _ input: [UInt8],
    limits: ParserLimits = ParserLimits(),
    options: ParserOptions = ParserOptions(),
    bodyLimit: ((RequestHead) -> Int?)? = nil,
    randomRounds: Int = 6,
    sourceLocation: SourceLocation = #_sourceLocation
) -> Outcome {
    let whole = runParser(fragments: [input], limits: limits, options: options, bodyLimit: bodyLimit, sourceLocation: sourceLocation)
    let bytewise = runParser(fragments: input.map { [$0] }, limits: limits, options: options, bodyLimit: bodyLimit, sourceLocation: sourceLocation)
    #expect(bytewise == whole, "byte-by-byte feeding differs from whole feeding", sourceLocation: sourceLocation)
    var rng = SplitMix64(seed: fnv1a(input) ^ 0x5EED)
    for round in 0..<randomRounds {
        let fragments = randomSplit(input, using: &rng)
        let split = runParser(fragments: fragments, limits: limits, options: options, bodyLimit: bodyLimit, sourceLocation: sourceLocation)
        #expect(split == whole, "random split \(round) \(fragments.map(\.count)) differs", sourceLocation: sourceLocation)
    }
    let fed = runFeed(fragments: randomSplit(input, using: &rng), limits: limits, options: options, bodyLimit: bodyLimit)
    #expect(fed == whole, "feed(_:) differs from next(_:)", sourceLocation: sourceLocation)
    return whole
}

// MARK: - Expectations

/// What a message should look like; nil fields are not checked.
struct ExpectedMessage: Sendable {
    var method: String
    var target: String
    var version: HTTPVersion? = nil
    var body: String? = ""
    var keepAlive: Bool? = nil
    var framing: BodyFraming? = nil
    var headers: [(String, String)]? = nil
    var complete: Bool = true

    init(
        _ method: String, _ target: String, version: HTTPVersion? = nil, body: String? = "", keepAlive: Bool? = nil,
        framing: BodyFraming? = nil, headers: [(String, String)]? = nil, complete: Bool = true
    ) {
        self.method = method
        self.target = target
        self.version = version
        self.body = body
        self.keepAlive = keepAlive
        self.framing = framing
        self.headers = headers
        self.complete = complete
    }

    func check(_ m: ParsedMessage, _ label: String, sourceLocation: SourceLocation) {
        #expect(m.head.method.rawValue == method, "\(label): method", sourceLocation: sourceLocation)
        #expect(m.head.target == target, "\(label): target", sourceLocation: sourceLocation)
        if let version { #expect(m.head.version == version, "\(label): version", sourceLocation: sourceLocation) }
        if let body { #expect(m.body == Array(body.utf8), "\(label): body", sourceLocation: sourceLocation) }
        if let keepAlive { #expect(m.head.keepAlive == keepAlive, "\(label): keepAlive", sourceLocation: sourceLocation) }
        if let framing { #expect(m.head.framing == framing, "\(label): framing", sourceLocation: sourceLocation) }
        if let headers {
            let got = m.head.headers.map { [$0.name, $0.value] }
            #expect(got == headers.map { [$0.0, $0.1] }, "\(label): headers", sourceLocation: sourceLocation)
        }
        #expect(m.complete == complete, "\(label): complete", sourceLocation: sourceLocation)
    }
}

enum Expected: Sendable {
    /// These messages, nothing pending, no error.
    case messages([ExpectedMessage])
    /// These messages (the last may be incomplete), then the stream ends mid-message.
    case incomplete([ExpectedMessage])
    /// These messages, then this error.
    case error(ParseError.Code, after: [ExpectedMessage] = [])
}

func check(_ outcome: Outcome, _ expected: Expected, _ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let (messages, code): ([ExpectedMessage], ParseError.Code?) =
        switch expected {
        case .messages(let m): (m, nil)
        case .incomplete(let m): (m, nil)
        case .error(let c, let m): (m, c)
        }
    #expect(outcome.error?.code == code, "\(label): error \(outcome)", sourceLocation: sourceLocation)
    #expect(outcome.messages.count == messages.count, "\(label): message count \(outcome)", sourceLocation: sourceLocation)
    for (m, e) in zip(outcome.messages, messages) { e.check(m, label, sourceLocation: sourceLocation) }
    switch expected {
    case .messages: #expect(outcome.idle, "\(label): expected nothing pending", sourceLocation: sourceLocation)
    case .incomplete: #expect(!outcome.idle, "\(label): expected a pending partial message", sourceLocation: sourceLocation)
    case .error: break
    }
}

/// A named parser case for tables.
struct ParserCase: Sendable, CustomTestStringConvertible {
    var name: String
    var input: [UInt8]
    var expected: Expected

    init(_ name: String, _ input: String, _ expected: Expected) {
        self.name = name
        self.input = Array(input.utf8)
        self.expected = expected
    }

    init(_ name: String, bytes: [UInt8], _ expected: Expected) {
        self.name = name
        self.input = bytes
        self.expected = expected
    }

    var testDescription: String { name }
}

// MARK: - Locating shared data

/// The repository root, found from this file's path (Tests/HTTP1Tests/TestSupport.swift).
func repositoryRoot(file: String = #filePath) -> String {
    var parts = file.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    parts.removeLast(3)  // TestSupport.swift, HTTP1Tests, Tests
    return parts.joined(separator: "/")
}
