// A strict HTTP/1.1 request parser (RFC 9112) as a value-type state machine. No I/O.
//
// Shape: events in, one result out per call. `next(_:)` consumes bytes until it can report one
// event (or runs out of input) and says how many bytes it took; the caller keeps the rest and calls
// again. The head is reported before any body byte is consumed, so the caller can route the
// request and set `bodyLimit` (or answer 413 / 100 Continue) before the body is read.
//
// Every decision depends only on the bytes seen so far, never on how they were split across
// calls: feeding a stream whole, byte by byte or at random split points yields the same events.

/// One thing the parser found.
package enum ParseEvent: Hashable, Sendable {
    /// A request line and field section. No body byte has been consumed yet: set
    /// `RequestParser.bodyLimit` now if this route has its own limit.
    case head(RequestHead)
    /// A piece of the body (already de-chunked). Pieces follow the read boundaries.
    case body([UInt8])
    /// The message is complete. If its head had `keepAlive == false` the parser now refuses
    /// everything but empty lines (`data_after_close`): respond, then close the connection.
    case end
    /// The request is malformed or over a limit: answer `error.status` with `Connection: close`
    /// and close. The parser is dead. (For `data_after_close` no answer is due.)
    case error(ParseError)
}

/// The result of one `RequestParser.next(_:)` call.
package struct ParseStep: Hashable, Sendable {
    /// Bytes of the input taken by the parser. With `event == nil` this is the whole input (the
    /// parser keeps what it needs of a partial line internally).
    package var consumed: Int
    /// The event, or nil when more input is needed.
    package var event: ParseEvent?

    package init(consumed: Int, event: ParseEvent?) {
        self.consumed = consumed
        self.event = event
    }
}

package struct RequestParser: Sendable {
    package var limits: ParserLimits
    package var options: ParserOptions
    /// The body limit for the current request. `nil` means `limits.maxBodySize`. Set it after a
    /// `.head` event (it is reset to nil when the message ends); a Content-Length above it is
    /// refused with 413 on the next call, before any body byte is read. Chunked bodies are counted
    /// against it as each chunk header arrives.
    package var bodyLimit: Int?

    private var state: State = .lineStart
    private var failure: ParseError?

    // Request line.
    private var methodBytes: [UInt8] = []
    private var targetBytes: [UInt8] = []
    private var versionIndex = 0
    private var versionMinor = 0
    private var requestLineBytes = 0
    private var targetForm: TargetForm = .origin

    // Field section (and trailer section).
    private var nameBytes: [UInt8] = []
    private var valueBytes: [UInt8] = []
    private var fields: [HTTPField] = []
    private var lineBytes = 0
    private var sectionBytes = 0
    private var headerCount = 0
    private var contentLength: Int?
    private var transferCodings: [String] = []
    private var sawTransferEncoding = false
    private var hostCount = 0
    private var connectionClose = false
    private var connectionKeepAlive = false
    private var connectionUpgrade = false
    private var sawUpgrade = false
    private var sawExpect = false
    private var sawAuthorization = false
    private var sawContentType = false
    private var expectsOnlyContinue = true
    private var inTrailers = false
    private var trailerBytes = 0

    // Body.
    private var framing: BodyFraming = .none
    private var keepAlive = true
    private var remaining = 0
    private var bodyReceived = 0
    private var chunkDigits = 0
    private var extensionBytes = 0

    // `feed(_:)` keeps unconsumed input here.
    private var pending: [UInt8] = []
    private var pendingStart = 0

    package init(limits: ParserLimits = ParserLimits(), options: ParserOptions = ParserOptions()) {
        self.limits = limits
        self.options = options
    }

    private enum State {
        // Request line (RFC 9112 §3).
        case lineStart, lineStartLF
        case method, targetStart, target
        case versionName, versionMajor, versionDot, versionMinor, versionEnd, requestLineLF
        // Field lines (RFC 9112 §5), also used for trailers (§7.1.2).
        case fieldStart, fieldName, fieldValueOWS, fieldValue, fieldLF, sectionEndLF
        // Body (RFC 9112 §6, §7).
        case bodyPending, fixedBody
        case chunkSize, chunkSizeBWS, chunkExtPreName, chunkExtName, chunkExtAfterName, chunkExtPreValue
        case chunkExtToken, chunkExtQuoted, chunkExtQuotedEscape, chunkExtAfterQuoted, chunkSizeLF
        case chunkData, chunkDataCR, chunkDataLF
        case messageEnd
        // After a message that closes the connection.
        case closed, closedLF
        case failed
    }

    /// The error that killed the parser, if any.
    package var error: ParseError? { failure }

    /// True between messages (nothing of a next request received yet, empty lines aside), and
    /// after a closing message. Use it to tell an idle keep-alive connection from a slow request,
    /// and a clean EOF from a truncated request.
    package var isIdle: Bool {
        switch state {
        case .lineStart, .closed: pending.count == pendingStart
        default: false
        }
    }

    /// Sets the body limit for the current request and checks it at once: returns the 413 error
    /// (and kills the parser) if the declared Content-Length is above it.
    package mutating func setBodyLimit(_ limit: Int) -> ParseError? {
        bodyLimit = limit
        if state == .bodyPending, case .contentLength(let n) = framing, n > limit {
            return fail(.bodyTooLarge, "Content-Length \(n) exceeds the body limit of \(limit) bytes")
        }
        return nil
    }

    // MARK: - Convenience: buffered feeding

    /// Appends `bytes` to an internal buffer and parses as far as possible. Stops after a `.head`
    /// event (so that `bodyLimit` can be set) and after `.error`; call `feed([])` to continue
    /// with the bytes already buffered.
    package mutating func feed(_ bytes: some Sequence<UInt8>) -> [ParseEvent] {
        var buffer = pending
        pending = []
        buffer.append(contentsOf: bytes)
        var offset = pendingStart
        var events: [ParseEvent] = []
        loop: while true {
            let start = offset
            let step = buffer.withUnsafeBytes { raw in
                self.next(UnsafeRawBufferPointer(rebasing: raw[start...]))
            }
            offset += step.consumed
            guard let event = step.event else { break }
            events.append(event)
            switch event {
            case .head, .error: break loop
            case .body, .end: continue
            }
        }
        if state == .failed {
            pendingStart = 0
            return events
        }
        if offset == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 64 * 1024)
            offset = 0
        } else if offset >= 4096 {
            buffer.removeSubrange(0..<offset)
            offset = 0
        }
        pending = buffer
        pendingStart = offset
        return events
    }

    // MARK: - Core

    /// Parses `input` until one event is found or the input is used up.
    package mutating func next(_ input: UnsafeRawBufferPointer) -> ParseStep {
        var i = 0
        let n = input.count
        while true {
            // States that act without input.
            switch state {
            case .failed:
                return ParseStep(consumed: 0, event: .error(failure!))
            case .bodyPending:
                if let error = beginBody() { return ParseStep(consumed: i, event: .error(error)) }
                continue
            case .messageEnd:
                endMessage()
                return ParseStep(consumed: i, event: .end)
            case .fixedBody, .chunkData:
                let take = min(remaining, n - i)
                guard take > 0 else { return ParseStep(consumed: i, event: nil) }
                let chunk = [UInt8](UnsafeRawBufferPointer(rebasing: input[i..<(i + take)]))
                remaining -= take
                i += take
                if state == .fixedBody {
                    if remaining == 0 { state = .messageEnd }
                } else {
                    bodyReceived += take
                    if remaining == 0 { state = .chunkDataCR }
                }
                return ParseStep(consumed: i, event: .body(chunk))
            default:
                break
            }

            guard i < n else { return ParseStep(consumed: i, event: nil) }
            // Fast path: a run of ordinary bytes in a target, field name or field value is taken
            // in one go. The run stops before any byte a limit would refuse, so the per-byte path
            // below still makes every decision (and reports the same error at the same byte).
            if let taken = takeRun(input, from: i), taken > 0 {
                i += taken
                continue
            }
            let byte = input[i]
            i += 1
            if let error = step(byte) {
                return ParseStep(consumed: i, event: .error(error))
            }
            if state == .bodyPending {
                return ParseStep(consumed: i, event: .head(makeHead()))
            }
        }
    }

    /// Consumes a run of bytes that need no decision; returns how many (nil if not in a run state).
    @inline(__always)
    private mutating func takeRun(_ input: UnsafeRawBufferPointer, from i: Int) -> Int? {
        let n = input.count
        switch state {
        case .target:
            let end = min(n, i + max(0, limits.maxRequestLineSize - requestLineBytes))
            var j = i
            while j < end, ByteClass.isTarget(input[j]) { j += 1 }
            guard j > i else { return 0 }
            targetBytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[i..<j]))
            requestLineBytes += j - i
            return j - i
        case .fieldName, .fieldValue:
            let room: Int
            if inTrailers {
                room = limits.maxTrailerSectionSize - trailerBytes
            } else {
                room = min(limits.maxHeaderSectionSize - sectionBytes, limits.maxHeaderLineSize - lineBytes)
            }
            let end = min(n, i + max(0, room))
            var j = i
            if state == .fieldName {
                while j < end, ByteClass.isToken(input[j]) { j += 1 }
            } else {
                while j < end, ByteClass.isFieldValue(input[j]) { j += 1 }
            }
            guard j > i else { return 0 }
            let count = j - i
            if inTrailers {
                trailerBytes += count
            } else {
                sectionBytes += count
                lineBytes += count
                if state == .fieldName {
                    nameBytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[i..<j]))
                } else {
                    valueBytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[i..<j]))
                }
            }
            return count
        default:
            return nil
        }
    }

    // MARK: - Byte steps

    private static let cr: UInt8 = 0x0D
    private static let lf: UInt8 = 0x0A
    private static let sp: UInt8 = 0x20
    private static let htab: UInt8 = 0x09
    /// HTTP-name "/" = "HTTP/", byte by byte.
    @inline(__always)
    private static func httpNameByte(_ index: Int) -> UInt8 {
        switch index {
        case 0: 0x48
        case 1, 2: 0x54
        case 3: 0x50
        default: 0x2F
        }
    }

    /// Advances the machine by one byte. Returns an error if the byte is refused.
    private mutating func step(_ b: UInt8) -> ParseError? {
        let cr = Self.cr, lf = Self.lf
        switch state {
        // MARK: Request line
        case .lineStart, .lineStartLF, .method, .targetStart, .target, .versionName, .versionMajor,
            .versionDot, .versionMinor, .versionEnd, .requestLineLF:
            // Every request-line byte except its CRLF counts, and so do leading empty lines.
            let terminator = (state == .versionEnd && b == cr) || state == .requestLineLF
            if !terminator {
                requestLineBytes += 1
                if requestLineBytes > limits.maxRequestLineSize {
                    return fail(.requestLineTooLong, "request line longer than \(limits.maxRequestLineSize) bytes")
                }
            }
            return stepRequestLine(b)

        // MARK: Field lines
        case .fieldStart:
            if b == cr {
                state = .sectionEndLF
                return nil
            }
            if b == lf { return fail(.bareLF, "field line starts with a bare LF") }
            if !inTrailers {
                headerCount += 1
                if headerCount > limits.maxHeaderCount {
                    return fail(.tooManyHeaders, "more than \(limits.maxHeaderCount) header fields")
                }
            }
            if let error = countFieldByte(lineByte: true) { return error }
            if b == Self.sp || b == Self.htab {
                // RFC 9112 §5.2: obs-fold is rejected; §2.2: so is whitespace before the first field.
                return fail(.obsFold, "field line starts with whitespace (obs-fold)")
            }
            guard ByteClass.isToken(b) else {
                return fail(.invalidHeaderName, b == UInt8(ascii: ":") ? "empty field name" : "invalid byte in field name")
            }
            if !inTrailers { nameBytes.append(b) }
            state = .fieldName
            return nil

        case .fieldName:
            if b == cr || b == lf { return fail(.missingColon, "field line without a colon") }
            if let error = countFieldByte(lineByte: true) { return error }
            if ByteClass.isToken(b) {
                if !inTrailers { nameBytes.append(b) }
            } else if b == UInt8(ascii: ":") {
                state = .fieldValueOWS
            } else if b == Self.sp || b == Self.htab {
                // RFC 9112 §5.1: no whitespace between field name and colon; MUST reject.
                return fail(.spaceBeforeColon, "whitespace between field name and colon")
            } else {
                return fail(.invalidHeaderName, "invalid byte in field name")
            }
            return nil

        case .fieldValueOWS, .fieldValue:
            if b == cr {
                if let error = countFieldByte(lineByte: false) { return error }
                state = .fieldLF
                return nil
            }
            if b == lf { return fail(.bareLF, "field line ends with a bare LF") }
            if let error = countFieldByte(lineByte: true) { return error }
            guard ByteClass.isFieldValue(b) else {
                return fail(.invalidHeaderValue, "control byte in field value")
            }
            if state == .fieldValueOWS {
                if b == Self.sp || b == Self.htab { return nil }
                state = .fieldValue
            }
            if !inTrailers { valueBytes.append(b) }
            return nil

        case .fieldLF:
            guard b == lf else { return fail(.bareCR, "CR not followed by LF in a field line") }
            if let error = countFieldByte(lineByte: false) { return error }
            state = .fieldStart
            return completeField()

        case .sectionEndLF:
            guard b == lf else { return fail(.bareCR, "CR not followed by LF after the field section") }
            if inTrailers {
                state = .messageEnd
                return nil
            }
            return completeHead()

        // MARK: Chunked body (RFC 9112 §7.1)
        case .chunkSize:
            if ByteClass.isHexDigit(b) {
                chunkDigits += 1
                let digit = ByteClass.hexValue(b)
                // chunk-size = 1*HEXDIG; at most 16 digits, and no overflow.
                guard chunkDigits <= 16, remaining <= (Int.max - digit) / 16 else {
                    return fail(.badChunkSize, "chunk size too long")
                }
                remaining = remaining * 16 + digit
                return nil
            }
            guard chunkDigits > 0 else {
                if b == lf { return fail(.bareLF, "bare LF in chunk line") }
                return fail(.badChunkSize, "chunk size is not a hexadecimal number")
            }
            switch b {
            case cr:
                state = .chunkSizeLF
                return nil
            case lf:
                return fail(.bareLF, "chunk line ends with a bare LF")
            case UInt8(ascii: ";"):
                if let error = countExtensionByte() { return error }
                state = .chunkExtPreName
                return nil
            case Self.sp, Self.htab:
                // BWS is only allowed before ";" (chunk-ext = *( BWS ";" BWS ext-name ... )).
                if let error = countExtensionByte() { return error }
                state = .chunkSizeBWS
                return nil
            default:
                return fail(.badChunkSize, "invalid byte after chunk size")
            }

        case .chunkSizeBWS, .chunkExtPreName, .chunkExtName, .chunkExtAfterName, .chunkExtPreValue,
            .chunkExtToken, .chunkExtQuoted, .chunkExtQuotedEscape, .chunkExtAfterQuoted:
            if b == cr {
                switch state {
                case .chunkExtName, .chunkExtToken, .chunkExtAfterQuoted:
                    state = .chunkSizeLF
                    return nil
                case .chunkSizeBWS:
                    return fail(.badChunkSize, "whitespace after chunk size")
                default:
                    return fail(.badChunkExtension, "incomplete chunk extension")
                }
            }
            if b == lf { return fail(.bareLF, "bare LF in chunk extension") }
            if let error = countExtensionByte() { return error }
            return stepChunkExtension(b)

        case .chunkSizeLF:
            guard b == lf else { return fail(.bareCR, "CR not followed by LF in chunk line") }
            if remaining == 0 {
                // last-chunk: the trailer section follows.
                inTrailers = true
                trailerBytes = 0
                state = .fieldStart
                return nil
            }
            let limit = bodyLimit ?? limits.maxBodySize
            if remaining > limit - bodyReceived {
                return fail(.bodyTooLarge, "chunked body exceeds the body limit of \(limit) bytes")
            }
            state = .chunkData
            return nil

        case .chunkDataCR:
            guard b == cr else { return fail(.badChunkTerminator, "chunk data not followed by CRLF") }
            state = .chunkDataLF
            return nil

        case .chunkDataLF:
            guard b == lf else { return fail(.badChunkTerminator, "chunk data not followed by CRLF") }
            chunkDigits = 0
            extensionBytes = 0
            remaining = 0
            state = .chunkSize
            return nil

        // MARK: After a closing message
        case .closed:
            // Like llhttp: empty lines are tolerated, anything else is refused.
            guard b == cr else { return fail(.dataAfterClose, "data after a message that closes the connection") }
            state = .closedLF
            return nil

        case .closedLF:
            guard b == lf else { return fail(.dataAfterClose, "data after a message that closes the connection") }
            state = .closed
            return nil

        case .bodyPending, .fixedBody, .chunkData, .messageEnd, .failed:
            preconditionFailure("Internal inconsistency: byte step in state \(state)")
        }
    }

    private mutating func stepRequestLine(_ b: UInt8) -> ParseError? {
        let cr = Self.cr, lf = Self.lf, sp = Self.sp
        switch state {
        case .lineStart:
            // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
            if b == cr {
                state = .lineStartLF
                return nil
            }
            if b == lf { return fail(.bareLF, "bare LF before the request line") }
            guard ByteClass.isToken(b) else {
                return fail(b == sp ? .invalidRequestLine : .invalidMethod, "invalid byte at the start of the request line")
            }
            methodBytes.append(b)
            state = .method
            return nil

        case .lineStartLF:
            guard b == lf else { return fail(.bareCR, "CR not followed by LF before the request line") }
            state = .lineStart
            return nil

        case .method:
            // method = token; exactly one SP follows (RFC 9112 §3).
            if ByteClass.isToken(b) {
                methodBytes.append(b)
                return nil
            }
            if b == sp {
                state = .targetStart
                return nil
            }
            if b == cr || b == lf { return fail(.invalidRequestLine, "request line has no target") }
            return fail(.invalidMethod, "invalid byte in method")

        case .targetStart, .target:
            if b == sp {
                if state == .targetStart { return fail(.invalidRequestLine, "more than one space after the method") }
                state = .versionName
                versionIndex = 0
                return nil
            }
            if b == cr || b == lf {
                // HTTP/0.9-style "GET /" without a version (SERVICE-NOTES S8: 400).
                return fail(.invalidRequestLine, "request line has no HTTP version")
            }
            guard ByteClass.isTarget(b) else { return fail(.invalidTarget, "invalid byte in request-target") }
            targetBytes.append(b)
            state = .target
            return nil

        case .versionName:
            // HTTP-name = %s"HTTP" (case-sensitive), then "/".
            guard b == Self.httpNameByte(versionIndex) else {
                return fail(.invalidVersion, "malformed HTTP version")
            }
            versionIndex += 1
            if versionIndex == 5 { state = .versionMajor }
            return nil

        case .versionMajor:
            guard b >= 0x30 && b <= 0x39 else { return fail(.invalidVersion, "malformed HTTP version") }
            guard b == UInt8(ascii: "1") else {
                return fail(.unsupportedVersion, "only HTTP/1.0 and HTTP/1.1 are supported")
            }
            state = .versionDot
            return nil

        case .versionDot:
            guard b == UInt8(ascii: ".") else { return fail(.invalidVersion, "malformed HTTP version") }
            state = .versionMinor
            return nil

        case .versionMinor:
            guard b >= 0x30 && b <= 0x39 else { return fail(.invalidVersion, "malformed HTTP version") }
            versionMinor = Int(b - 0x30)
            state = .versionEnd
            return nil

        case .versionEnd:
            if b == lf { return fail(.bareLF, "request line ends with a bare LF") }
            guard b == cr else { return fail(.invalidVersion, "malformed HTTP version") }
            guard versionMinor <= 1 else {
                return fail(.unsupportedVersion, "only HTTP/1.0 and HTTP/1.1 are supported")
            }
            state = .requestLineLF
            return nil

        case .requestLineLF:
            guard b == lf else { return fail(.bareCR, "CR not followed by LF in the request line") }
            state = .fieldStart
            return completeRequestLine()

        default:
            preconditionFailure("Internal inconsistency: request-line step in state \(state)")
        }
    }

    private mutating func stepChunkExtension(_ b: UInt8) -> ParseError? {
        let sp = Self.sp, htab = Self.htab
        let isWS = b == sp || b == htab
        let semicolon = UInt8(ascii: ";")
        switch state {
        case .chunkSizeBWS:
            if isWS { return nil }
            guard b == semicolon else { return fail(.badChunkSize, "invalid byte after chunk size") }
            state = .chunkExtPreName
        case .chunkExtPreName:
            if isWS { return nil }
            guard ByteClass.isToken(b) else { return fail(.badChunkExtension, "chunk extension without a name") }
            state = .chunkExtName
        case .chunkExtName:
            if ByteClass.isToken(b) { return nil }
            if isWS {
                state = .chunkExtAfterName
            } else if b == UInt8(ascii: "=") {
                state = .chunkExtPreValue
            } else if b == semicolon {
                state = .chunkExtPreName
            } else {
                return fail(.badChunkExtension, "invalid byte in chunk extension name")
            }
        case .chunkExtAfterName:
            if isWS { return nil }
            if b == UInt8(ascii: "=") {
                state = .chunkExtPreValue
            } else if b == semicolon {
                state = .chunkExtPreName
            } else {
                return fail(.badChunkExtension, "invalid byte in chunk extension")
            }
        case .chunkExtPreValue:
            if isWS { return nil }
            if b == UInt8(ascii: "\"") {
                state = .chunkExtQuoted
            } else if ByteClass.isToken(b) {
                state = .chunkExtToken
            } else {
                return fail(.badChunkExtension, "invalid chunk extension value")
            }
        case .chunkExtToken:
            if ByteClass.isToken(b) { return nil }
            if isWS {
                state = .chunkSizeBWS
            } else if b == semicolon {
                state = .chunkExtPreName
            } else {
                return fail(.badChunkExtension, "invalid byte in chunk extension value")
            }
        case .chunkExtQuoted:
            if b == UInt8(ascii: "\"") {
                state = .chunkExtAfterQuoted
            } else if b == UInt8(ascii: "\\") {
                state = .chunkExtQuotedEscape
            } else if !ByteClass.isQdtext(b) {
                return fail(.badChunkExtension, "invalid byte in quoted chunk extension value")
            }
        case .chunkExtQuotedEscape:
            guard ByteClass.isQuotedPairChar(b) else {
                return fail(.badChunkExtension, "invalid quoted-pair in chunk extension")
            }
            state = .chunkExtQuoted
        case .chunkExtAfterQuoted:
            if isWS {
                state = .chunkSizeBWS
            } else if b == semicolon {
                state = .chunkExtPreName
            } else {
                return fail(.badChunkExtension, "invalid byte after quoted chunk extension value")
            }
        default:
            preconditionFailure("Internal inconsistency: chunk-extension step in state \(state)")
        }
        return nil
    }

    // MARK: - Counting

    @inline(__always)
    private mutating func countFieldByte(lineByte: Bool) -> ParseError? {
        if inTrailers {
            trailerBytes += 1
            if trailerBytes > limits.maxTrailerSectionSize {
                return fail(.trailersTooLarge, "trailer section larger than \(limits.maxTrailerSectionSize) bytes")
            }
            return nil
        }
        sectionBytes += 1
        if sectionBytes > limits.maxHeaderSectionSize {
            return fail(.headerSectionTooLarge, "header section larger than \(limits.maxHeaderSectionSize) bytes")
        }
        if lineByte {
            lineBytes += 1
            if lineBytes > limits.maxHeaderLineSize {
                return fail(.headerTooLarge, "header field line longer than \(limits.maxHeaderLineSize) bytes")
            }
        }
        return nil
    }

    @inline(__always)
    private mutating func countExtensionByte() -> ParseError? {
        extensionBytes += 1
        if extensionBytes > limits.maxChunkExtensionSize {
            return fail(.chunkExtensionTooLarge, "chunk extensions longer than \(limits.maxChunkExtensionSize) bytes")
        }
        return nil
    }

    // MARK: - Completed pieces

    private mutating func fail(_ code: ParseError.Code, _ detail: String) -> ParseError {
        let error = ParseError(code, detail)
        failure = error
        state = .failed
        // Drop buffers: a dead parser holds no memory worth keeping.
        methodBytes = []
        targetBytes = []
        nameBytes = []
        valueBytes = []
        fields = []
        pending = []
        pendingStart = 0
        return error
    }

    /// Checks the target form against the method, and the method against the known list.
    private mutating func completeRequestLine() -> ParseError? {
        let isConnect = methodBytes.elementsEqual("CONNECT".utf8)
        if isConnect {
            // RFC 9112 §3.2.3: CONNECT uses authority-form = uri-host ":" port.
            guard let colon = targetBytes.lastIndex(of: UInt8(ascii: ":")), colon > 0,
                colon + 1 < targetBytes.count, isValidHostHeader(targetBytes)
            else {
                return fail(.invalidTarget, "CONNECT needs an authority-form target (host:port)")
            }
            targetForm = .authority
        } else if targetBytes.first == UInt8(ascii: "/") {
            targetForm = .origin
        } else if targetBytes == [UInt8(ascii: "*")] {
            // RFC 9112 §3.2.4: meant for OPTIONS; left to the server to refuse for other methods.
            targetForm = .asterisk
        } else if isAbsoluteURIPrefix(targetBytes) {
            targetForm = .absolute
        } else {
            return fail(.invalidTarget, "request-target is not in origin, absolute, authority or asterisk form")
        }
        if let known = options.knownMethods, !known.contains(String(decoding: methodBytes, as: UTF8.self)) {
            return fail(.unknownMethod, "method not implemented")
        }
        return nil
    }

    /// absolute-URI = scheme ":" ...; scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    private func isAbsoluteURIPrefix(_ bytes: [UInt8]) -> Bool {
        guard let first = bytes.first, (first | 0x20) >= 0x61 && (first | 0x20) <= 0x7A else { return false }
        for b in bytes.dropFirst() {
            if b == UInt8(ascii: ":") { return true }
            let isAlnum = (b >= 0x30 && b <= 0x39) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x7A)
            if !(isAlnum || b == UInt8(ascii: "+") || b == UInt8(ascii: "-") || b == UInt8(ascii: ".")) { return false }
        }
        return false
    }

    /// A field line is complete: store it and apply the framing rules that can be decided per line.
    private mutating func completeField() -> ParseError? {
        lineBytes = 0
        if inTrailers {
            // RFC 9112 §7.1.2 / SERVICE-NOTES F11: trailers are parsed, bounded and discarded, never
            // merged into the header section.
            return nil
        }
        let value = trimOWS(valueBytes[...])
        let field = HTTPField(name: String(decoding: nameBytes, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
        defer {
            nameBytes.removeAll(keepingCapacity: true)
            valueBytes.removeAll(keepingCapacity: true)
        }
        fields.append(field)

        if equalsLowercase(nameBytes, "content-length") {
            // RFC 9112 §6.1: a message with both Content-Length and Transfer-Encoding is a smuggling
            // vector; the server MAY reject it and MUST close. We reject.
            if sawTransferEncoding {
                return fail(.conflictingFraming, "both Content-Length and Transfer-Encoding")
            }
            // RFC 9112 §6.3 #5 / SERVICE-NOTES F2, F3: any second Content-Length (even equal) is refused.
            if contentLength != nil {
                return fail(.duplicateContentLength, "more than one Content-Length")
            }
            // Content-Length = 1*DIGIT, with overflow checks (SERVICE-NOTES F4).
            guard let n = parseDecimal(value) else {
                return fail(.badContentLength, "Content-Length is not a decimal number")
            }
            contentLength = n
        } else if equalsLowercase(nameBytes, "transfer-encoding") {
            // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request means faulty framing (SERVICE-NOTES F7).
            if versionMinor == 0 {
                return fail(.transferEncodingHTTP10, "Transfer-Encoding in an HTTP/1.0 request")
            }
            if contentLength != nil {
                return fail(.conflictingFraming, "both Content-Length and Transfer-Encoding")
            }
            sawTransferEncoding = true
            // transfer-coding list; an empty element or a non-token coding is refused (SERVICE-NOTES F5).
            for element in value.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                let coding = trimOWS(element)
                guard !coding.isEmpty, coding.allSatisfy(ByteClass.isToken) else {
                    return fail(.badTransferEncoding, "malformed Transfer-Encoding")
                }
                transferCodings.append(String(decoding: coding.map(asciiLower), as: UTF8.self))
            }
        } else if equalsLowercase(nameBytes, "host") {
            hostCount += 1
            // RFC 9112 §3.2: more than one Host → 400.
            if hostCount > 1 { return fail(.duplicateHost, "more than one Host") }
            guard isValidHostHeader(value) else { return fail(.invalidHost, "malformed Host") }
        } else if equalsLowercase(nameBytes, "connection") {
            // RFC 9110 §7.6.1: Connection = #connection-option, case-insensitive tokens.
            for element in value.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true) {
                let option = trimOWS(element)
                if equalsLowercase(option, "close") {
                    connectionClose = true
                } else if equalsLowercase(option, "keep-alive") {
                    connectionKeepAlive = true
                } else if equalsLowercase(option, "upgrade") {
                    connectionUpgrade = true
                }
            }
        } else if equalsLowercase(nameBytes, "upgrade") {
            sawUpgrade = true
        } else if equalsLowercase(nameBytes, "authorization") {
            // RFC 9110 §11.6.2: one credentials value; two could authorize with one and log the other.
            if sawAuthorization { return fail(.duplicateField, "more than one Authorization") }
            sawAuthorization = true
        } else if equalsLowercase(nameBytes, "content-type") {
            // RFC 9110 §8.3: a singleton; "first wins" here and "last wins" in a proxy read different bodies.
            if sawContentType { return fail(.duplicateField, "more than one Content-Type") }
            sawContentType = true
        } else if equalsLowercase(nameBytes, "expect") {
            // RFC 9110 §10.1.1: Expect = #expectation; only 100-continue is defined. Sent in one field line:
            // a repeated line is refused so that no two readers disagree about whether to send 100.
            if sawExpect { return fail(.duplicateField, "more than one Expect") }
            sawExpect = true
            var any = false
            for element in value.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true) {
                let expectation = trimOWS(element)
                if expectation.isEmpty { continue }
                any = true
                if !equalsLowercase(expectation, "100-continue") { expectsOnlyContinue = false }
            }
            if !any { expectsOnlyContinue = false }
        }
        return nil
    }

    /// The field section is complete: decide framing, persistence and expectations.
    private mutating func completeHead() -> ParseError? {
        let isHTTP11 = versionMinor == 1
        // RFC 9112 §3.2: an HTTP/1.1 request without Host → 400.
        if options.requireHost && isHTTP11 && hostCount == 0 {
            return fail(.missingHost, "HTTP/1.1 request without Host")
        }
        if sawTransferEncoding {
            // RFC 9112 §6.3 #4: chunked must be the final coding of a request, applied once;
            // otherwise 400 and close. A final chunked after other codings is understood framing
            // with an unsupported coding: 501 (RFC 9112 §6.1, SERVICE-NOTES F5).
            let chunkedCount = transferCodings.count(where: { $0 == "chunked" })
            guard transferCodings.last == "chunked", chunkedCount == 1 else {
                return fail(.badTransferEncoding, "chunked is not the final transfer coding")
            }
            guard transferCodings.count == 1 else {
                return fail(.unsupportedTransferCoding, "transfer codings other than chunked are not supported")
            }
            framing = .chunked
        } else if let n = contentLength {
            framing = .contentLength(n)
        } else {
            framing = .none
        }
        state = .bodyPending
        return nil
    }

    /// Builds the head event (called right after `completeHead` succeeded).
    private mutating func makeHead() -> RequestHead {
        let headers = HTTPHeaders(fields)
        fields = []
        let isHTTP11 = versionMinor == 1
        // RFC 9112 §9.3: persistence.
        var persistent = connectionClose ? false : (isHTTP11 ? true : connectionKeepAlive)
        // RFC 9110 §7.8: Upgrade is honoured only with the "upgrade" connection option, and an
        // HTTP/1.0 Upgrade is ignored. We never switch protocols; close after answering.
        let isUpgrade = isHTTP11 && sawUpgrade && connectionUpgrade
        let method = HTTPMethod(String(decoding: methodBytes, as: UTF8.self))
        if isUpgrade || targetForm == .authority { persistent = false }
        // RFC 9110 §10.1.1: 100-continue in an HTTP/1.0 request MUST be ignored.
        var expectation = RequestExpectation.none
        if isHTTP11 && sawExpect {
            expectation = expectsOnlyContinue ? .continue100 : .unsupported(headers.values(for: "expect").joined(separator: ", "))
        }
        keepAlive = persistent
        return RequestHead(
            method: method,
            target: String(decoding: targetBytes, as: UTF8.self),
            targetForm: targetForm,
            version: HTTPVersion(major: 1, minor: versionMinor),
            headers: headers,
            keepAlive: persistent,
            framing: framing,
            expectation: expectation,
            isUpgradeRequest: isUpgrade
        )
    }

    /// Runs on the first call after `.head`: applies the body limit, then picks the body state.
    private mutating func beginBody() -> ParseError? {
        let limit = bodyLimit ?? limits.maxBodySize
        switch framing {
        case .none:
            state = .messageEnd
        case .contentLength(let n):
            // SERVICE-NOTES L3: 413 decided from Content-Length before reading the body.
            if n > limit {
                return fail(.bodyTooLarge, "Content-Length \(n) exceeds the body limit of \(limit) bytes")
            }
            remaining = n
            state = n == 0 ? .messageEnd : .fixedBody
        case .chunked:
            remaining = 0
            bodyReceived = 0
            chunkDigits = 0
            extensionBytes = 0
            state = .chunkSize
        }
        return nil
    }

    /// Resets per-message state after `.end`.
    private mutating func endMessage() {
        methodBytes.removeAll(keepingCapacity: true)
        targetBytes.removeAll(keepingCapacity: true)
        nameBytes.removeAll(keepingCapacity: true)
        valueBytes.removeAll(keepingCapacity: true)
        fields = []
        versionIndex = 0
        versionMinor = 0
        requestLineBytes = 0
        targetForm = .origin
        lineBytes = 0
        sectionBytes = 0
        headerCount = 0
        contentLength = nil
        transferCodings.removeAll()
        sawTransferEncoding = false
        hostCount = 0
        connectionClose = false
        connectionKeepAlive = false
        connectionUpgrade = false
        sawUpgrade = false
        sawExpect = false
        sawAuthorization = false
        sawContentType = false
        expectsOnlyContinue = true
        inTrailers = false
        trailerBytes = 0
        framing = .none
        remaining = 0
        bodyReceived = 0
        chunkDigits = 0
        extensionBytes = 0
        bodyLimit = nil
        state = keepAlive ? .lineStart : .closed
        keepAlive = true
    }
}

// MARK: - Byte helpers

/// Whether `bytes`, lowercased, equal the lowercase ASCII `literal`.
@inline(__always)
func equalsLowercase(_ bytes: [UInt8], _ literal: StaticString) -> Bool {
    equalsLowercase(bytes[...], literal)
}

func equalsLowercase(_ bytes: ArraySlice<UInt8>, _ literal: StaticString) -> Bool {
    guard bytes.count == literal.utf8CodeUnitCount else { return false }
    return literal.withUTF8Buffer { lit in
        var k = 0
        for b in bytes {
            if asciiLower(b) != lit[k] { return false }
            k += 1
        }
        return true
    }
}

/// 1*DIGIT → Int, nil when empty, not all digits, or overflowing.
func parseDecimal(_ bytes: some Collection<UInt8>) -> Int? {
    guard !bytes.isEmpty else { return nil }
    var value = 0
    for b in bytes {
        guard b >= 0x30 && b <= 0x39 else { return nil }
        let (m, o1) = value.multipliedReportingOverflow(by: 10)
        let (s, o2) = m.addingReportingOverflow(Int(b - 0x30))
        if o1 || o2 { return nil }
        value = s
    }
    return value
}
