import DINOv2
import Dispatch
import Foundation
import Hashing
import Imaging
import Kernels
import Logging
import Runtime
import SphereMap
import TensorFiles
import Synchronization

/// What one request computes with: a backbone and the bundle that was live when the request started.
/// Immutable; a reload builds a new one and swaps the reference, so in-flight requests finish on their snapshot.
package struct ModelSnapshot: Sendable {
    package var backbone: DinoVisionTransformer
    package var backboneName: String
    package var bundle: SphereBundle
    /// File name of the live bundle in the bundles directory (nil for the built-in demo bundle).
    package var bundleFile: String?
    package var bundleSHA256: String
    package var demo: Bool
    package var loadedAt: Date

    /// The backbone's patch grid on an R×R letterbox (R/14 for DINOv2; DINOv1's patch and stride, METHOD §1.5);
    /// nil when R does not fit it.
    package func grid(resolution r: Int) -> PatchGrid? {
        PatchGrid(resolution: r, patch: backbone.config.patchSize, stride: backbone.config.patchStride)
    }

    /// `X-Model-Version`: the backbone, the bundle file and a short digest; loud for the demo model.
    package var version: String {
        let b = bundleFile.map { "\($0)@\(bundleSHA256.prefix(12))" } ?? "demo-bundle"
        return demo ? "DEMO-random-weights (results are meaningless; give --backbone and --bundles); \(backboneName); \(b)"
            : "\(backboneName); \(b)"
    }
}

package struct ReloadEvent: Sendable {
    package enum Result: String, Sendable { case success, failure, unchanged }
    package var result: Result
    package var file: String?
    package var error: String?
}

/// Holds the live model and hot-reloads bundles from a directory: the newest valid `*.safetensors` (names sort in
/// publication order; writers publish with temp + rename, and dot/temp files are ignored). Reloads run on one serial
/// queue, off the request path: load → validate → warm up → swap. A bundle that fails keeps the old one serving.
package final class ModelStore: Sendable {
    private let state = Mutex<State>(State())
    private let reloadQueue = DispatchQueue(label: "spherecorr.reload")
    private let logger: Logger
    package let bundlesDirectory: String?
    private let onReload: @Sendable (ReloadEvent, ModelSnapshot?) -> Void

    private struct State {
        var snapshot: ModelSnapshot?
        var lastReloadError: String?
        var lastReloadErrorFile: String?
        /// Files that failed validation, with the size and mtime they had, so a poll does not retry them.
        var rejected: [String: FileStamp] = [:]
        var liveStamp: FileStamp?
        var watcher: (any DispatchSourceTimer)?
    }

    struct FileStamp: Equatable, Sendable { var size: Int; var mtime: Double; var inode: UInt64 }

    package init(bundlesDirectory: String?, logger: Logger, onReload: @escaping @Sendable (ReloadEvent, ModelSnapshot?) -> Void = { _, _ in }) {
        self.bundlesDirectory = bundlesDirectory
        self.logger = logger
        self.onReload = onReload
    }

    package var snapshot: ModelSnapshot? { state.withLock { $0.snapshot } }
    package var lastReloadError: String? {
        state.withLock { s in s.lastReloadError.map { e in s.lastReloadErrorFile.map { "\($0): \(e)" } ?? e } }
    }

    /// Installs the first model. With a bundles directory, the newest bundle that validates becomes live;
    /// when none does, the error says why for each.
    package func start(backbone: DinoVisionTransformer, backboneName: String, demoBundle: SphereBundle?, demo: Bool) throws {
        if let dir = bundlesDirectory {
            let files = try bundleFiles(in: dir)
            var errors: [String] = []
            for f in files.reversed() {
                switch validate(file: f, directory: dir, backbone: backbone) {
                case let .success(bundle):
                    install(ModelSnapshot(backbone: backbone, backboneName: backboneName, bundle: bundle.0, bundleFile: f,
                                          bundleSHA256: bundle.1, demo: demo, loadedAt: Date()), stamp: stamp(dir + "/" + f))
                    if !errors.isEmpty { state.withLock { $0.lastReloadError = errors.joined(separator: "; ") } }
                    return
                case let .failure(e):
                    errors.append("\(f): \(e.message)")
                    state.withLock { $0.rejected[f] = stamp(dir + "/" + f) }
                }
            }
            if let demoBundle {
                logger.warning("no valid bundle in \(dir); serving the built-in demo bundle", metadata: ["errors": "\(errors)"])
                install(ModelSnapshot(backbone: backbone, backboneName: backboneName, bundle: demoBundle, bundleFile: nil,
                                      bundleSHA256: "demo", demo: true, loadedAt: Date()), stamp: nil)
                if !errors.isEmpty { state.withLock { $0.lastReloadError = errors.joined(separator: "; ") } }
                return
            }
            throw ModelStoreError(message: files.isEmpty ? "\(dir): no *.safetensors bundle found" : "no valid bundle in \(dir): " + errors.joined(separator: "; "))
        }
        guard let demoBundle else { throw ModelStoreError(message: "no bundles directory and no demo bundle") }
        install(ModelSnapshot(backbone: backbone, backboneName: backboneName, bundle: demoBundle, bundleFile: nil,
                              bundleSHA256: "demo", demo: demo, loadedAt: Date()), stamp: nil)
    }

    private func install(_ s: ModelSnapshot, stamp: FileStamp?) {
        state.withLock { $0.snapshot = s; $0.liveStamp = stamp }
        logger.info("model live", metadata: ["version": "\(s.version)"])
    }

    /// Polls the directory every `interval` seconds (also call `reload` on SIGHUP or the admin route).
    package func watch(every interval: Double) {
        guard bundlesDirectory != nil, interval > 0 else { return }
        let queue = reloadQueue
        state.withLock { s in
            // Created inside the lock: the timer never crosses an isolation boundary.
            let t = DispatchSource.makeTimerSource(queue: queue)
            t.schedule(deadline: .now() + interval, repeating: interval)
            t.setEventHandler { [weak self] in _ = self?.reloadNow() }
            s.watcher = t
            t.resume()
        }
    }

    package func stopWatching() { state.withLock { $0.watcher?.cancel(); $0.watcher = nil } }

    /// Serialised reload; returns what happened. Safe to call from any thread.
    @discardableResult
    package func reload() -> ReloadEvent { reloadQueue.sync { reloadNow() } }

    /// Runs on reloadQueue.
    private func reloadNow() -> ReloadEvent {
        guard let dir = bundlesDirectory, let current = snapshot else { return ReloadEvent(result: .unchanged) }
        let files: [String]
        do { files = try bundleFiles(in: dir) } catch {
            return fail(file: nil, message: "\(error)")
        }
        guard let newest = files.last else { return ReloadEvent(result: .unchanged) }
        let st = stamp(dir + "/" + newest)
        let (live, rejected) = state.withLock { ($0.liveStamp, $0.rejected[newest]) }
        if newest == current.bundleFile && st == live { return ReloadEvent(result: .unchanged) }
        if let rejected, rejected == st { return ReloadEvent(result: .unchanged) }
        // Never go back to an older file: the newest one is the candidate.
        if let liveFile = current.bundleFile, newest < liveFile { return ReloadEvent(result: .unchanged) }
        let t0 = Measure.now()
        switch validate(file: newest, directory: dir, backbone: current.backbone) {
        case let .success((bundle, sha)):
            var next = current
            next.bundle = bundle
            next.bundleFile = newest
            next.bundleSHA256 = sha
            next.demo = current.demo && current.backboneName.hasPrefix("demo")
            next.loadedAt = Date()
            state.withLock {
                $0.snapshot = next
                $0.liveStamp = st
                $0.lastReloadError = nil
                $0.lastReloadErrorFile = nil
            }
            logger.info("bundle reloaded", metadata: ["file": "\(newest)", "seconds": "\(String(format: "%.3f", Measure.now() - t0))"])
            let e = ReloadEvent(result: .success, file: newest)
            onReload(e, next)
            return e
        case let .failure(err):
            state.withLock { $0.rejected[newest] = st }
            return fail(file: newest, message: err.message)
        }
    }

    private func fail(file: String?, message: String) -> ReloadEvent {
        state.withLock { $0.lastReloadError = message; $0.lastReloadErrorFile = file }
        logger.error("bundle rejected; the previous bundle keeps serving", metadata: ["file": "\(file ?? "-")", "error": "\(message)"])
        let e = ReloadEvent(result: .failure, file: file, error: message)
        onReload(e, snapshot)
        return e
    }

    struct ValidationFailure: Error { var message: String }

    /// Load, check the backbone it was trained for, and warm up: the mapper's output on real backbone features
    /// must be finite.
    private func validate(file: String, directory: String, backbone: DinoVisionTransformer) -> Result<(SphereBundle, String), ValidationFailure> {
        let path = directory + "/" + file
        do {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            let sha = SHA256.hex(bytes)
            let bundle = try SphereBundle.load(file: .init(bytes: bytes, name: path))
            guard bundle.backboneDim == backbone.config.embedDim else {
                return .failure(ValidationFailure(message: "trained for a backbone of width \(bundle.backboneDim); the server's backbone has width \(backbone.config.embedDim)"))
            }
            if let v = bundle.metadata["backbone_variant"], let live = backbone.config.variant,
               v.contains("vit"), !v.contains("vit\(live.rawValue.prefix(1))14") {
                return .failure(ValidationFailure(message: "trained for backbone \(v); the server runs \(backbone.config.displayName)"))
            }
            // Warm-up: a 28×28 grey image through the backbone and the mapper.
            let image = [Float](repeating: 0.1, count: 3 * 28 * 28)
            let f = image.withUnsafeBufferPointer { backbone.forward(images: $0.baseAddress!, batch: 1, height: 28, width: 28) }
            let s = bundle.mapper.sphere(features: f.features.pointer, batch: 1, tokens: f.patches)
            guard s.array.allSatisfy(\.isFinite) else { return .failure(ValidationFailure(message: "warm-up produced non-finite sphere coordinates")) }
            return .success((bundle, sha))
        } catch {
            return .failure(ValidationFailure(message: "\(error)".replacingOccurrences(of: path + ": ", with: "")))
        }
    }

    /// Candidate bundle files, sorted by name (publication order). Hidden and temporary files are ignored.
    func bundleFiles(in dir: String) throws -> [String] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: dir) } catch {
            throw ModelStoreError(message: "\(dir): cannot list bundles directory: \(error.localizedDescription)")
        }
        return names.filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") && !$0.contains(".tmp") }.sorted()
    }

    private func stamp(_ path: String) -> FileStamp? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileStamp(size: Int(st.st_size), mtime: Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) * 1e-9, inode: UInt64(st.st_ino))
    }
}

package struct ModelStoreError: Error, CustomStringConvertible {
    package var message: String
    package var description: String { message }
}
