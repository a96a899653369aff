// libFuzzer target for the HTTP1 module. Not a SwiftPM target: scripts/fuzz-http1 compiles it
// together with Sources/HTTP1/*.swift into one module,
//
//     swiftc -sanitize=fuzzer,address -parse-as-library -package-name SphereCorr \
//         -module-name HTTP1Fuzz Sources/HTTP1/*.swift Fuzz/HTTP1Fuzz/main.swift
//
// so `package` declarations are visible without an import (-package-name makes them compile).
//
// Each input is checked for crashes and memory errors (ASan), and for these properties:
//  1. feeding it whole, one byte at a time, and at input-derived split points gives the same events
//     (default limits and tiny limits, strict and Host-less options);
//  2. events are well-formed: body only inside a message, a complete Content-Length message carries
//     exactly n body bytes, nothing follows an error or a closing message;
//  3. a response echoing the parsed fields serializes to a head that cannot be split;
//  4. the multipart, media-type and boundary parsers never crash and only return 400/413/415.

/// The events of one run, normalized.
struct Trace: Equatable {
    var events: [String] = []
    var bodies: [[UInt8]] = []
}

func run(_ input: UnsafeRawBufferPointer, cuts: [Int], limits: ParserLimits, options: ParserOptions) -> (Trace, [RequestHead]) {
    var parser = RequestParser(limits: limits, options: options)
    var trace = Trace()
    var heads: [RequestHead] = []
    var body: [UInt8] = []
    var inMessage = false
    var closed = false
    var start = 0
    outer: for end in cuts + [input.count] where end >= start {
        var offset = start
        while true {
            let step = parser.next(UnsafeRawBufferPointer(rebasing: input[offset..<end]))
            precondition(step.consumed >= 0 && offset + step.consumed <= end, "consumed out of range")
            offset += step.consumed
            guard let event = step.event else {
                precondition(offset == end, "needMore without consuming everything")
                break
            }
            switch event {
            case .head(let head):
                precondition(!inMessage, "head inside a message")
                precondition(!closed, "head after a closing message")
                inMessage = true
                heads.append(head)
                trace.events.append("head \(head.method) \(head.target) \(head.version) \(head.framing) \(head.keepAlive) \(head.headers.count)")
            case .body(let piece):
                precondition(inMessage && !piece.isEmpty, "body outside a message or empty")
                body += piece
            case .end:
                precondition(inMessage, "end outside a message")
                let head = heads.last!
                if case .contentLength(let n) = head.framing {
                    precondition(body.count == n, "Content-Length body has the wrong size")
                }
                trace.bodies.append(body)
                trace.events.append("end \(body.count)")
                body = []
                inMessage = false
                if !head.keepAlive { closed = true }
            case .error(let error):
                precondition([400, 413, 414, 431, 501, 505].contains(error.status.code), "unexpected status")
                trace.events.append("error \(error.code.rawValue)")
                let again = parser.next(UnsafeRawBufferPointer(start: nil, count: 0))
                precondition(again.event == .error(error) && again.consumed == 0, "dead parser came back")
                break outer
            }
        }
        start = end
    }
    if inMessage { trace.events.append("open \(body.count)") }
    return (trace, heads)
}

/// Split points derived from the input itself (deterministic per input).
func cuts(for input: UnsafeRawBufferPointer) -> [Int] {
    guard input.count > 1 else { return [] }
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in input.prefix(64) {
        h ^= UInt64(b)
        h &*= 0x0000_0100_0000_01B3
    }
    var points: [Int] = []
    for _ in 0..<Int(h % 7) + 1 {
        h = h &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        points.append(Int((h >> 33) % UInt64(input.count)))
    }
    return points.sorted()
}

func checkParser(_ input: UnsafeRawBufferPointer, limits: ParserLimits, options: ParserOptions, bytewise: Bool) -> [RequestHead] {
    let (whole, heads) = run(input, cuts: [], limits: limits, options: options)
    let (split, _) = run(input, cuts: cuts(for: input), limits: limits, options: options)
    precondition(whole == split, "split feeding differs from whole feeding")
    if bytewise {
        let (single, _) = run(input, cuts: Array(0..<input.count), limits: limits, options: options)
        precondition(whole == single, "byte-by-byte feeding differs from whole feeding")
    }
    return heads
}

/// Property 3: whatever the fields hold, the serialized head has one field per line, token names,
/// and no CR/LF/NUL inside a line.
func checkSerializer(_ head: RequestHead) {
    var response = Response(status: .ok, headers: head.headers, body: Array(head.target.utf8))
    response.headers.append(name: "X-Target", value: head.target)
    for method in [HTTPMethod.get, .head] {
        let context = ResponseContext(requestMethod: method, requestVersion: head.version, keepAlive: head.keepAlive, date: HTTPDate.imfFixdate(epochSeconds: 0))
        let out = ResponseSerializer.serialize(response, context: context)
        // Find the end of the head.
        var end = -1
        var i = 0
        while i + 3 < out.count {
            if out[i] == 0x0D && out[i + 1] == 0x0A && out[i + 2] == 0x0D && out[i + 3] == 0x0A {
                end = i
                break
            }
            i += 1
        }
        precondition(end > 0, "no end of head")
        let headBytes = Array(out[0..<end])
        var lines: [[UInt8]] = []
        var line: [UInt8] = []
        var j = 0
        while j < headBytes.count {
            if headBytes[j] == 0x0D {
                precondition(j + 1 < headBytes.count && headBytes[j + 1] == 0x0A, "bare CR in response head")
                lines.append(line)
                line = []
                j += 2
                continue
            }
            precondition(headBytes[j] != 0x0A && headBytes[j] != 0x00, "LF or NUL in a response line")
            line.append(headBytes[j])
            j += 1
        }
        lines.append(line)
        var contentLengths = 0
        for l in lines.dropFirst() {
            guard let colon = l.firstIndex(of: UInt8(ascii: ":")) else { preconditionFailure("response field without colon") }
            precondition(colon > 0 && l[..<colon].allSatisfy(ByteClass.isToken), "bad response field name")
            if String(decoding: l[..<colon], as: UTF8.self).lowercased() == "content-length" { contentLengths += 1 }
        }
        precondition(contentLengths == 1, "not exactly one Content-Length")
        let bodyLength = out.count - end - 4
        precondition(bodyLength == (method == .head ? 0 : response.body.count), "wrong body length")
    }
}

func checkMultipart(_ bytes: [UInt8]) {
    for boundary in ["B", "------------------------d74496d66958873e"] {
        do {
            let parts = try MultipartParser.parse(bytes, boundary: boundary, limits: MultipartLimits(maxParts: 8, maxPartHeaderSize: 256, maxPartSize: 1024))
            precondition(parts.count <= 8, "too many parts")
            for p in parts { precondition(p.body.count <= 1024, "part too large") }
        } catch {
            precondition([400, 413].contains(error.status.code), "unexpected multipart status")
        }
    }
    let text = String(decoding: bytes.prefix(512), as: UTF8.self)
    _ = MediaType(parsing: text)
    do {
        _ = try MultipartParser.boundary(fromContentType: text)
    } catch {
        precondition([400, 415].contains(error.status.code), "unexpected boundary status")
    }
}

let tinyLimits = ParserLimits(
    maxRequestLineSize: 48, maxHeaderLineSize: 40, maxHeaderSectionSize: 160, maxHeaderCount: 4,
    maxBodySize: 64, maxChunkExtensionSize: 16, maxTrailerSectionSize: 32)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let bytewise = size <= 2048
    let heads = checkParser(input, limits: ParserLimits(), options: ParserOptions(), bytewise: bytewise)
    _ = checkParser(input, limits: tinyLimits, options: ParserOptions(requireHost: false, knownMethods: nil), bytewise: bytewise)
    for head in heads.prefix(4) { checkSerializer(head) }
    checkMultipart(Array(input))
    return 0
}
