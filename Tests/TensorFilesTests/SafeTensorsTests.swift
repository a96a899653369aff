import Foundation
import Testing
@testable import TensorFiles

private func tempURL(_ name: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("tf-\(UUID().uuidString)-\(name)")
}

/// Hand-builds a safetensors file from a header string and data bytes.
private func rawFile(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    var out: [UInt8] = []
    withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) { out += $0 }
    return out + h + data
}

@Suite struct SafeTensorsTests {
    @Test func roundTripThroughFileWithMetadata() throws {
        var w = SafeTensorsWriter(metadata: ["format": "spherecorr-bundle", "version": "1"])
        w.add("a.weight", shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        w.add("b", shape: [1], floats: [-0.5])
        w.add("scalar", shape: [], floats: [7])
        let url = tempURL("rt.safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try w.write(to: url)
        let f = try SafeTensorsFile(contentsOf: url)
        #expect(f.metadata == ["format": "spherecorr-bundle", "version": "1"])
        #expect(f.names == ["a.weight", "b", "scalar"])
        #expect(try f.info("a.weight").shape == [2, 3])
        #expect(try f.floats("a.weight") == [1, 2, 3, 4, 5, 6])
        #expect(try f.floats("scalar") == [7])
        let view = try #require(try f.float32View("a.weight"))
        #expect(Array(view) == [1, 2, 3, 4, 5, 6])
        #expect(throws: TensorFileError.missingTensor(file: url.path, name: "nope")) { try f.floats("nope") }
    }

    @Test func halfAndBFloat16AreConverted() throws {
        // F16: 1.0 = 0x3C00, -2.0 = 0xC000, 65504 = 0x7BFF, smallest subnormal 0x0001 = 2^-24
        // BF16: 1.0 = 0x3F80, -3.0 = 0xC040
        let f16: [UInt16] = [0x3C00, 0xC000, 0x7BFF, 0x0001]
        let bf16: [UInt16] = [0x3F80, 0xC040]
        let data = f16.flatMap { [UInt8($0 & 0xff), UInt8($0 >> 8)] } + bf16.flatMap { [UInt8($0 & 0xff), UInt8($0 >> 8)] }
        let header = #"{"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]}}"#
        let f = try SafeTensorsFile(bytes: rawFile(header: header, data: data))
        #expect(try f.floats("h") == [1, -2, 65504, Float(sign: .plus, exponent: -24, significand: 1)])
        #expect(try f.floats("b") == [1, -3])
        #expect(try f.float32View("h") == nil)
    }

    @Test(arguments: [
        (rawFile(header: "{}", declaredLength: 1000), "exceeds file size"),
        (rawFile(header: "[1,2]"), "not a JSON object"),
        (rawFile(header: "{not json"), "not a JSON object"),
        (rawFile(header: #"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0]), "outside the data section"),
        (rawFile(header: #"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8)), "needs 12 bytes"),
        (rawFile(header: #"{"t":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8)), "unsupported or missing dtype"),
        (rawFile(header: #"{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8)), "bad dimension"),
        (rawFile(header: #"{"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, data: Array(repeating: 0, count: 8)), "outside the data section"),
        (rawFile(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: Array(repeating: 0, count: 12)), "overlap"),
        (rawFile(header: #"{"__metadata__":{"k":3}}"#), "not a string"),
        (rawFile(header: #"{"t":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8)), "bad dimension"),
        ([1, 2, 3], "too short"),
    ] as [([UInt8], String)])
    func malformedHeadersAreRejectedWithAReason(bytes: [UInt8], reason: String) {
        do {
            _ = try SafeTensorsFile(bytes: bytes, name: "bad.safetensors")
            Issue.record("accepted a malformed file; expected '\(reason)'")
        } catch {
            let text = "\(error)"
            #expect(text.contains("bad.safetensors"), "error must name the file: \(text)")
            #expect(text.contains(reason), "\(text)")
        }
    }

    @Test func missingFileAndDirectoryAreErrors() {
        #expect(throws: TensorFileError.self) { try SafeTensorsFile(contentsOf: URL(fileURLWithPath: "/nonexistent/x.safetensors")) }
        #expect(throws: TensorFileError.self) { try SafeTensorsFile(contentsOf: FileManager.default.temporaryDirectory) }
    }

    @Test func truncatedFileOnDisk() throws {
        var w = SafeTensorsWriter()
        w.add("t", shape: [16], floats: Array(repeating: 1, count: 16))
        let bytes = w.encoded()
        for cut in [4, 9, bytes.count / 2, bytes.count - 1] {
            #expect(throws: TensorFileError.self) { try SafeTensorsFile(bytes: Array(bytes.prefix(cut))) }
        }
    }
}

@Suite struct NPYTests {
    @Test func roundTripFloat32() throws {
        let a = NPYArray(shape: [2, 3], floats: [0, 1, 2, 3, 4, -5.5])
        let url = tempURL("a.npy")
        defer { try? FileManager.default.removeItem(at: url) }
        try NPY.write(a, to: url)
        let b = try NPY.read(contentsOf: url)
        #expect(b.shape == [2, 3])
        #expect(b.dtype == .float32)
        #expect(try b.floats() == [0, 1, 2, 3, 4, -5.5])
        let bytes = NPY.encode(a)
        #expect((bytes.count - a.data.count) % 64 == 0, "data must start 64-byte aligned")
    }

    @Test func readsNumpyWrittenHeaders() throws {
        // Exactly what numpy 1.x/2.x writes for np.arange(3, dtype=np.uint8) and a 0-d float64.
        func make(_ header: String, _ data: [UInt8]) -> [UInt8] {
            var h = header
            while (10 + h.utf8.count + 1) % 64 != 0 { h += " " }
            h += "\n"
            return NPY.magic + [1, 0, UInt8(h.utf8.count & 0xff), UInt8(h.utf8.count >> 8)] + Array(h.utf8) + data
        }
        let u8 = try NPY.decode(make("{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", [7, 8, 9]))
        #expect(u8.shape == [3])
        #expect(try u8.bytes() == [7, 8, 9])
        let d: Double = 2.5
        let f64 = try NPY.decode(make("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", withUnsafeBytes(of: d) { Array($0) }))
        #expect(f64.shape == [])
        #expect(try f64.floats() == [2.5])
    }

    @Test func rejectsWhatItCannotRead() {
        let good = NPY.encode(NPYArray(shape: [2], floats: [1, 2]))
        #expect(throws: TensorFileError.self) { try NPY.decode(Array(good.dropLast())) }
        #expect(throws: TensorFileError.self) { try NPY.decode([0, 1, 2]) }
        func patched(_ from: String, _ to: String) -> [UInt8] {
            precondition(from.utf8.count == to.utf8.count)
            var b = good
            let f = Array(from.utf8)
            let i = (0...(b.count - f.count)).first { Array(b[$0..<$0 + f.count]) == f }!
            b.replaceSubrange(i..<i + f.count, with: Array(to.utf8))
            return b
        }
        #expect(throws: TensorFileError.self) { try NPY.decode(patched("<f4", ">f4")) }
        #expect(throws: TensorFileError.self) { try NPY.decode(patched("False", "True ")) }
        #expect(throws: TensorFileError.self) { try NPY.decode(patched("(2,)", "(3,)")) }
    }
}
