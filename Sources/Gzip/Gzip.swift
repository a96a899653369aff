import CZlib

/// A zlib failure: the call and zlib's return code and message.
package struct GzipError: Error, Hashable, Sendable, CustomStringConvertible {
    package var operation: String
    package var code: Int32
    package var message: String

    package var description: String { "\(operation) failed: \(message) (zlib \(code))" }
}

/// gzip (RFC 1952) through zlib: one-shot compression of a whole response body, and the inverse (tests, clients).
package enum Gzip {
    /// zlib's level 6, its own default: on JSON it gets within a few percent of level 9 at a fraction of the time.
    package static let defaultLevel: Int32 = 6

    /// `input` as one gzip member. The output buffer is sized by `deflateBound`, so one `deflate(Z_FINISH)` call
    /// finishes and memory stays proportional to the input.
    package static func compress(_ input: [UInt8], level: Int32 = defaultLevel) throws(GzipError) -> [UInt8] {
        var stream = z_stream()
        let initResult = spc_deflate_init_gzip(&stream, level)
        guard initResult == Z_OK else { throw error("deflateInit2", initResult, &stream) }
        defer { deflateEnd(&stream) }
        // deflateBound covers the zlib wrapper; the gzip wrapper is 18 bytes against zlib's 6 (zlib.h).
        let bound = Int(deflateBound(&stream, uLong(input.count))) + 12
        var output = [UInt8](repeating: 0, count: bound)
        let result: Int32 = input.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { destination in
                // zlib never writes through next_in; the cast is the C API's missing const.
                stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress ?? UnsafePointer(destination.baseAddress!))
                stream.avail_in = uInt(source.count)
                stream.next_out = destination.baseAddress
                stream.avail_out = uInt(destination.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard result == Z_STREAM_END else { throw error("deflate", result, &stream) }
        output.removeLast(Int(stream.avail_out))
        return output
    }

    /// The bytes of a gzip stream (one or more members). Refuses output beyond `maxOutputBytes` (a bomb guard).
    package static func decompress(_ input: [UInt8], maxOutputBytes: Int = 1 << 30) throws(GzipError) -> [UInt8] {
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var offset = 0
        while offset < input.count {
            var stream = z_stream()
            let initResult = spc_inflate_init_gzip(&stream)
            guard initResult == Z_OK else { throw error("inflateInit2", initResult, &stream) }
            defer { inflateEnd(&stream) }
            var result: Int32 = Z_OK
            while result != Z_STREAM_END {
                let produced: Int
                (result, produced, offset) = input.withUnsafeBufferPointer { source in
                    chunk.withUnsafeMutableBufferPointer { destination in
                        stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress! + offset)
                        stream.avail_in = uInt(source.count - offset)
                        stream.next_out = destination.baseAddress
                        stream.avail_out = uInt(destination.count)
                        let r = inflate(&stream, Z_NO_FLUSH)
                        return (r, destination.count - Int(stream.avail_out), source.count - Int(stream.avail_in))
                    }
                }
                guard result == Z_OK || result == Z_STREAM_END else {
                    throw error("inflate", result == Z_BUF_ERROR ? Z_DATA_ERROR : result, &stream,
                                fallback: result == Z_BUF_ERROR ? "truncated gzip stream" : nil)
                }
                output.append(contentsOf: chunk[0..<produced])
                guard output.count <= maxOutputBytes else {
                    throw GzipError(operation: "inflate", code: Z_BUF_ERROR, message: "output above \(maxOutputBytes) bytes")
                }
                if result == Z_OK, produced == 0, offset == input.count {
                    throw GzipError(operation: "inflate", code: Z_DATA_ERROR, message: "truncated gzip stream")
                }
            }
        }
        return output
    }

    /// Raw deflate data (RFC 1951, no wrapper) that must inflate to exactly `expectedBytes`: a ZIP entry of
    /// method 8 (TensorFiles' torch checkpoints). Memory is the output only.
    package static func inflateRaw(_ input: UnsafeRawBufferPointer, expectedBytes: Int) throws(GzipError) -> [UInt8] {
        var stream = z_stream()
        let initResult = spc_inflate_init_raw(&stream)
        guard initResult == Z_OK else { throw error("inflateInit2", initResult, &stream) }
        defer { inflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: expectedBytes + 1)  // one spare byte detects longer streams
        var consumed = 0, produced = 0
        var result: Int32 = Z_OK
        // avail_in/avail_out are 32-bit: feed and drain in chunks below 1 GiB.
        let chunk = 1 << 30
        while result != Z_STREAM_END {
            let inCount = min(chunk, input.count - consumed), outCount = min(chunk, output.count - produced)
            let (r, usedIn, usedOut): (Int32, Int, Int) = output.withUnsafeMutableBufferPointer { destination in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + consumed }
                                                      ?? UnsafePointer(destination.baseAddress!))
                stream.avail_in = uInt(inCount)
                stream.next_out = destination.baseAddress! + produced
                stream.avail_out = uInt(outCount)
                let r = inflate(&stream, Z_NO_FLUSH)
                return (r, inCount - Int(stream.avail_in), outCount - Int(stream.avail_out))
            }
            result = r; consumed += usedIn; produced += usedOut
            if result == Z_BUF_ERROR || (result == Z_OK && usedIn == 0 && usedOut == 0) {
                throw GzipError(operation: "inflate", code: Z_DATA_ERROR,
                                message: produced > expectedBytes ? "more than \(expectedBytes) bytes" : "truncated deflate stream")
            }
            guard result == Z_OK || result == Z_STREAM_END else { throw error("inflate", result, &stream) }
            if produced > expectedBytes { throw GzipError(operation: "inflate", code: Z_DATA_ERROR, message: "more than \(expectedBytes) bytes") }
        }
        guard produced == expectedBytes else {
            throw GzipError(operation: "inflate", code: Z_DATA_ERROR, message: "\(produced) bytes, expected \(expectedBytes)")
        }
        output.removeLast()
        return output
    }

    private static func error(_ operation: String, _ code: Int32, _ stream: inout z_stream, fallback: String? = nil) -> GzipError {
        let message = stream.msg.map { String(cString: $0) } ?? fallback ?? String(cString: zError(code))
        return GzipError(operation: operation, code: code, message: message)
    }
}
