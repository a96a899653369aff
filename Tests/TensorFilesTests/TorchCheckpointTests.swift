import Foundation
import Testing
@testable import TensorFiles

/// Fixtures written by tools/parity/make_pth_fixtures.py with torch.save itself (and by hand for the hostile ones).
private let pthDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Fixtures/pth")

private func openError(_ name: String) -> String {
    do { _ = try TorchCheckpoint(contentsOf: pthDir.appendingPathComponent(name)); return "opened" } catch { return "\(error)" }
}

@Suite struct TorchCheckpointTests {
    /// Strided views, shared storages, float16/bfloat16 storages, a Parameter and nested dicts come out as the
    /// contiguous float32 tensors torch.load gives, in every ZIP flavour (stored, deflate, ZIP64 extra fields).
    @Test(arguments: ["tensors.pth", "tensors-deflate.pth", "tensors-zip64.pth"])
    func everyTensorEqualsTorchLoad(_ file: String) throws {
        let ckpt = try TorchCheckpoint(contentsOf: pthDir.appendingPathComponent(file))
        let expected = try SafeTensorsFile(contentsOf: pthDir.appendingPathComponent("tensors.expected.safetensors"))
        #expect(ckpt.names == expected.names, "\(file)")
        #expect(expected.names.count == 10)
        for n in expected.names {
            #expect(ckpt.shape(of: n) == expected.shape(of: n), "\(file): \(n) shape")
            let got = try ckpt.floats(n), want = try expected.floats(n)
            #expect(got.map(\.bitPattern) == want.map(\.bitPattern), "\(file): \(n)")
        }
        #expect(ckpt.tensors["transposed"]?.isContiguous == false && ckpt.tensors["sliced"]?.offset == 9)
        #expect(ckpt.tensors["half"]?.dtype == .f16 && ckpt.tensors["bfloat"]?.dtype == .bf16)
    }

    /// Contiguous float32 tensors of stored entries are views of the mapped file; strided, converted or
    /// compressed ones are not (they are materialised by `floats`).
    @Test func contiguousFloat32IsViewedInPlace() throws {
        let ckpt = try TorchCheckpoint(contentsOf: pthDir.appendingPathComponent("tensors.pth"))
        let view = try #require(try ckpt.float32View("param"))
        #expect(Array(view) == (try ckpt.floats("param")))
        #expect(Int(bitPattern: view.baseAddress!) % 64 == 0)  // torch aligns storages to 64 bytes
        #expect(try ckpt.float32View("transposed") == nil && ckpt.float32View("half") == nil)
        #expect(try ckpt.float32View("sliced") == nil)  // rows 7 apart, 4 wide: not contiguous
        let deflated = try TorchCheckpoint(contentsOf: pthDir.appendingPathComponent("tensors-deflate.pth"))
        #expect(try deflated.float32View("param") == nil)
    }

    @Test func forbiddenGlobalIsRefusedNamingFileAndGlobal() {
        let e = openError("forbidden-global.pth")
        #expect(e.contains("forbidden-global.pth") && e.contains("refusing global 'os.system'"), "\(e)")
    }

    @Test func truncatedArchiveIsNamed() {
        let e = openError("truncated.pth")
        #expect(e.contains("truncated.pth") && e.contains("truncated"), "\(e)")
    }

    @Test func missingStorageEntryIsNamed() {
        let e = openError("missing-entry.pth")
        #expect(e.contains("missing-entry.pth") && e.contains("storage entry 'tensors/data/1' is missing"), "\(e)")
    }

    @Test func legacyFormatAndNonArchivesAreNamed() throws {
        let e = openError("legacy.pth")
        #expect(e.contains("legacy.pth") && e.contains("legacy (pre-1.6)"), "\(e)")
        let other = openError("tensors.expected.safetensors")
        #expect(other.contains("not a ZIP archive"), "\(other)")
    }

    /// Damage inside the pickle or the directory is an error, never a crash: every prefix of a real checkpoint, and
    /// the checkpoint with each byte of its pickle flipped.
    @Test func damagedBytesNeverCrash() throws {
        let good = try Data(contentsOf: pthDir.appendingPathComponent("tensors.pth"))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tc-\(UUID().uuidString).pth")
        defer { try? FileManager.default.removeItem(at: url) }
        for cut in stride(from: 0, to: good.count, by: 97) {
            try good.prefix(cut).write(to: url)
            #expect(throws: TensorFileError.self) { _ = try TorchCheckpoint(contentsOf: url) }
        }
        // data.pkl is the first entry: its bytes follow the 30-byte local header, the name and the extra field.
        let nameLen = Int(good[26]) | Int(good[27]) << 8, extraLen = Int(good[28]) | Int(good[29]) << 8
        let pkl = 30 + nameLen + extraLen
        for i in stride(from: pkl, to: pkl + 400, by: 3) {
            var bad = good
            bad[i] ^= 0x5A
            try bad.write(to: url)
            if let c = try? TorchCheckpoint(contentsOf: url) {
                for n in c.names { _ = try? c.floats(n) }  // whatever it parsed stays inside its storages
            }
        }
    }
}
