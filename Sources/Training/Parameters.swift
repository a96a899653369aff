import Kernels
import SphereMap

/// One trainable tensor inside the flat parameter buffer.
package struct TensorSlot: Sendable {
    /// The reference checkpoint name (METHOD §3.6); the shared CABlock appears once, as `prototypes.blocks.0.*`.
    package let name: String
    package let shape: [Int]
    package let offset: Int
    package var count: Int { shape.reduce(1, *) }
}

/// f_S and S_Z parameters in one flat buffer, with their gradients and names. One buffer makes Adam one loop,
/// the shared CABlock exactly one set of tensors (updated once, METHOD §4.1 and H16), and state files one write.
/// Names and order come from `SphereBundle.namedTensors()`: they are not written a second time here.
package final class ParameterSet: @unchecked Sendable {
    static let sharedBlockPrefix = "prototypes.blocks.0."
    static func sharedBlockTwin(_ name: String) -> String {
        "prototypes.blocks.1." + name.dropFirst(sharedBlockPrefix.count)
    }

    package let slots: [TensorSlot]
    let index: [String: Int]
    /// Parameters.   [P]
    package let values: FloatStorage
    /// Gradients of the last step (zeroed at the start of each).   [P]
    package let grads: FloatStorage
    package var count: Int { values.count }

    init(bundle: SphereBundle) {
        var slots: [TensorSlot] = [], offset = 0
        var data: [[Float]] = []
        for (name, p) in bundle.namedTensors() where name != "sphere.weight" && !name.hasPrefix("prototypes.blocks.1.") {
            slots.append(TensorSlot(name: name, shape: p.shape, offset: offset))
            data.append(p.values)
            offset += p.shape.reduce(1, *)
        }
        self.slots = slots
        index = Dictionary(uniqueKeysWithValues: slots.enumerated().map { ($1.name, $0) })
        values = FloatStorage(count: offset, zeroed: false)
        grads = FloatStorage(count: offset)
        for (s, v) in zip(slots, data) { v.withUnsafeBufferPointer { values.pointer.advanced(by: s.offset).update(from: $0.baseAddress!, count: s.count) } }
    }

    package func slot(_ name: String) -> TensorSlot {
        guard let i = index[name] else { preconditionFailure("no trainable tensor '\(name)'") }
        return slots[i]
    }
    /// Parameter values of one tensor.
    package func pointer(_ name: String) -> UnsafeMutablePointer<Float> { values.pointer + slot(name).offset }
    /// Gradient of one tensor.
    package func gradient(_ name: String) -> UnsafeMutablePointer<Float> { grads.pointer + slot(name).offset }
    package func buffer(_ name: String) -> UnsafeBufferPointer<Float> {
        let s = slot(name); return UnsafeBufferPointer(start: values.pointer + s.offset, count: s.count)
    }
    /// The parameters as a sphere bundle viewing this buffer (no copy): the forward passes training shares with
    /// inference read their weights from it.
    func bundleView() -> SphereBundle {
        let d = slot("sphere_mapper.0.weight").shape[1], nc = slot(Self.sharedBlockPrefix + "attn.k.weight").shape[1]
        return SphereBundle.assembled(backboneDim: d, categories: nc) { f in
            Parameter(pointer: UnsafePointer(pointer(f.name)), shape: f.shape, owner: self)
        }
    }
    package func gradientBuffer(_ name: String) -> UnsafeBufferPointer<Float> {
        let s = slot(name); return UnsafeBufferPointer(start: grads.pointer + s.offset, count: s.count)
    }
}
