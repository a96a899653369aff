import Kernels
import Synchronization

/// The server's memory cache: backbone features of recently seen images by `FeatureKey` (content, backbone,
/// resolution, as the on-disk `FeatureStore`), bounded in bytes (least recently used out first). Matching one image
/// against many embeds it once. An entry also keeps the image's sphere vectors for the model version that computed
/// them (a reload makes them stale, not wrong), and what later stages derive from both (matching's normalised
/// descriptors, issue #14), so that a warm request recomputes none of it. Every array kept counts in the bound.
package final class FeatureCache: Sendable {
    package typealias Key = FeatureKey

    package struct Entry: Sendable {
        package var features: FloatStorage   // [N, D]
        package var width: Int               // decoded image size
        package var height: Int
        /// Unit sphere vectors [N, 3] and the model version (bundle) they belong to.
        package var sphere: (version: String, values: FloatStorage)? = nil
        /// Values derived from the features (and sphere vectors) by later stages, by name, with their size in bytes.
        /// The names say what they depend on (e.g. the model version); new sphere vectors drop them all.
        package var derived: [String: Derived] = [:]
        package var bytes: Int {
            (features.count + (sphere?.values.count ?? 0)) * 4 + derived.values.reduce(0) { $0 + $1.bytes }
        }

        package init(features: FloatStorage, width: Int, height: Int, sphere: (version: String, values: FloatStorage)? = nil) {
            self.features = features; self.width = width; self.height = height; self.sphere = sphere
        }
    }

    /// A value computed from an entry by a later stage (this module does not know its type) and the bytes it holds.
    package struct Derived: Sendable {
        package var value: any Sendable
        package var bytes: Int
        package init(_ value: any Sendable, bytes: Int) { self.value = value; self.bytes = max(0, bytes) }
    }

    private struct State {
        var entries: [Key: (Entry, UInt64)] = [:]
        var clock: UInt64 = 0
        var bytes = 0
        var hits = 0
        var misses = 0
    }

    private let state = Mutex(State())
    package let capacityBytes: Int

    package init(capacityBytes: Int) { self.capacityBytes = max(0, capacityBytes) }

    package func get(_ key: Key) -> Entry? {
        state.withLock { s in
            s.clock += 1
            guard let (e, _) = s.entries[key] else { s.misses += 1; return nil }
            s.entries[key] = (e, s.clock)
            s.hits += 1
            return e
        }
    }

    package func put(_ key: Key, _ entry: Entry) {
        guard entry.bytes <= capacityBytes else { return }
        state.withLock { s in
            s.clock += 1
            if let (old, _) = s.entries[key] { s.bytes -= old.bytes }
            s.entries[key] = (entry, s.clock)
            s.bytes += entry.bytes
            while s.bytes > capacityBytes, let victim = s.entries.min(by: { $0.value.1 < $1.value.1 })?.key {
                s.bytes -= s.entries[victim]!.0.bytes
                s.entries[victim] = nil
            }
        }
    }

    /// The sphere vectors of a cached image for model `version`, nil when absent or of another version.
    /// Not counted as a hit or miss: those count images, and `get` has already counted this one.
    package func sphere(_ key: Key, version: String) -> FloatStorage? {
        state.withLock { s in
            guard let (e, _) = s.entries[key], let sp = e.sphere, sp.version == version else { return nil }
            return sp.values
        }
    }

    /// Keeps `values` beside the features of `key` (nothing when the image is no longer cached). Derived values
    /// may have used the previous vectors: they are dropped.
    package func putSphere(_ key: Key, version: String, _ values: FloatStorage) {
        update(key) { e in
            e.sphere = (version, values)
            e.derived = [:]
        }
    }

    /// The value derived from a cached image under `name`, nil when absent. Not a hit or miss (see `sphere`).
    package func derived(_ key: Key, name: String) -> (any Sendable)? {
        state.withLock { s in s.entries[key]?.0.derived[name]?.value }
    }

    /// Keeps `value` beside the features of `key` under `name` (nothing when the image is no longer cached, or when
    /// the entry with it would not fit the cache at all).
    package func putDerived(_ key: Key, name: String, _ value: Derived) {
        update(key) { e in e.derived[name] = value }
    }

    /// Changes a cached entry in place, keeping its recency; older entries are evicted when it grew the total over
    /// the bound, never this one; the change is not kept when the entry alone would exceed the bound.
    private func update(_ key: Key, _ change: (inout Entry) -> Void) {
        state.withLock { s in
            guard let (old, used) = s.entries[key] else { return }
            var e = old
            change(&e)
            guard e.bytes <= capacityBytes else { return }
            s.bytes += e.bytes - old.bytes
            s.entries[key] = (e, used)
            while s.bytes > capacityBytes, let victim = s.entries.filter({ $0.key != key }).min(by: { $0.value.1 < $1.value.1 })?.key {
                s.bytes -= s.entries[victim]!.0.bytes
                s.entries[victim] = nil
            }
        }
    }

    package var stats: (hits: Int, misses: Int, bytes: Int, entries: Int) {
        state.withLock { ($0.hits, $0.misses, $0.bytes, $0.entries.count) }
    }
}
