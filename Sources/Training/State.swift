import Foundation
import Kernels
import TensorFiles

/// The resumable state of a `SphereTrainer` as one safetensors file: `param.<name>`, `adam_m.<name>`,
/// `adam_v.<name>` per trainable tensor, `sphere.weight`, and in `__metadata__` the config, the step count and
/// the triplet RNG state (decimal), plus the caller's own keys under `user.`.
struct TrainerState {
    static let format = "spherecorr-trainer-state"
    static let version = "1"

    var config: TrainerConfig
    var step: Int
    var rngState: UInt64
    var file: SafeTensorsFile
    var extra: [String: String]

    static func write(_ t: SphereTrainer, to url: URL, extra: [String: String]) throws {
        let c = t.config
        var meta: [String: String] = [
            "format": format, "version": version,
            "width": String(c.width), "categories": c.categories.joined(separator: ","),
            "vp_bins": String(c.vpBins), "triplets": String(c.triplets),
            "learning_rate": String(c.learningRate.bitPattern), "weights": c.weights.description,
            "weights_bits": [c.weights.rec, c.weights.rd, c.weights.o, c.weights.vp].map { String($0.bitPattern) }.joined(separator: ","),
            "seed": String(c.seed), "mapper_heads": c.mapperHeads.map(String.init) ?? "",
            "distance_margin": String(c.distanceMargin.bitPattern), "orientation_threshold": String(c.orientationThreshold.bitPattern),
            "step": String(t.stepCount), "adam_step": String(t.adam.step), "rng_state": String(t.rng.state),
        ]
        for (k, v) in extra { meta["user." + k] = v }
        var w = SafeTensorsWriter(metadata: meta)
        let p = t.parameters
        for s in p.slots {
            w.add("param." + s.name, shape: s.shape, floats: UnsafeBufferPointer(start: p.values.pointer + s.offset, count: s.count))
            w.add("adam_m." + s.name, shape: s.shape, floats: UnsafeBufferPointer(start: t.adam.m.pointer + s.offset, count: s.count))
            w.add("adam_v." + s.name, shape: s.shape, floats: UnsafeBufferPointer(start: t.adam.v.pointer + s.offset, count: s.count))
        }
        if !t.unusedSphere.isEmpty { w.add("sphere.weight", shape: [t.unusedSphere.count / 3, 3], floats: t.unusedSphere) }
        try w.write(to: url)
    }

    static func read(_ url: URL) throws -> TrainerState {
        let path = url.path
        func fail(_ s: String) -> TrainingError { .badState(file: path, detail: s) }
        let f: SafeTensorsFile
        do { f = try SafeTensorsFile(contentsOf: url) } catch { throw fail("\(error)") }
        let m = f.metadata
        guard m["format"] == format, m["version"] == version else { throw fail("not a trainer state (format \(m["format"] ?? "missing"), version \(m["version"] ?? "missing"))") }
        func int(_ k: String) throws -> Int { guard let v = m[k].flatMap({ Int($0) }) else { throw fail("metadata '\(k)' missing or not an integer") }; return v }
        func bits(_ k: String) throws -> Float { guard let v = m[k].flatMap({ UInt32($0) }) else { throw fail("metadata '\(k)' missing") }; return Float(bitPattern: v) }
        guard let cats = m["categories"], let seed = m["seed"].flatMap({ UInt64($0) }), let rng = m["rng_state"].flatMap({ UInt64($0) }) else {
            throw fail("metadata 'categories', 'seed' or 'rng_state' missing")
        }
        let wb = (m["weights_bits"] ?? "").split(separator: ",").compactMap { UInt32($0) }.map { Float(bitPattern: $0) }
        guard wb.count == 4 else { throw fail("metadata 'weights_bits' malformed") }
        var c = TrainerConfig(width: try int("width"), categories: cats.split(separator: ",").map(String.init), vpBins: try int("vp_bins"),
                              triplets: try int("triplets"), learningRate: try bits("learning_rate"),
                              weights: LossWeights(rec: wb[0], rd: wb[1], o: wb[2], vp: wb[3]), seed: seed,
                              mapperHeads: m["mapper_heads"].flatMap { Int($0) })
        c.distanceMargin = try bits("distance_margin")
        c.orientationThreshold = try bits("orientation_threshold")
        var extra: [String: String] = [:]
        for (k, v) in m where k.hasPrefix("user.") { extra[String(k.dropFirst(5))] = v }
        let st = try int("step")
        guard try int("adam_step") == st else { throw fail("adam_step differs from step") }
        return TrainerState(config: c, step: st, rngState: rng, file: f, extra: extra)
    }

    func apply(to t: SphereTrainer) throws {
        func fail(_ s: String) -> TrainingError { .badState(file: file.path, detail: s) }
        let p = t.parameters
        for s in p.slots {
            for (prefix, dst) in [("param.", p.values.pointer), ("adam_m.", t.adam.m.pointer), ("adam_v.", t.adam.v.pointer)] {
                let name = prefix + s.name
                guard let info = file.tensors[name], info.shape == s.shape else { throw fail("tensor '\(name)' missing or not of shape \(s.shape)") }
                let v: [Float]
                do { v = try file.floats(name) } catch { throw fail("\(error)") }
                v.withUnsafeBufferPointer { (dst + s.offset).update(from: $0.baseAddress!, count: s.count) }
            }
        }
        var expected: Set<String> = ["sphere.weight"]
        for s in p.slots { for prefix in ["param.", "adam_m.", "adam_v."] { expected.insert(prefix + s.name) } }
        if let odd = Set(file.names).subtracting(expected).sorted().first { throw fail("unexpected tensor '\(odd)'") }
        if file.tensors["sphere.weight"] != nil {
            let s = try file.floats("sphere.weight")
            guard s.count == t.unusedSphere.count else { throw fail("sphere.weight has \(s.count) values") }
            t.unusedSphere = s
        }
        t.adam.step = step
        t.restore(step: step, rngState: rngState)
    }
}
