import Synchronization

/// loading → warming → ready → draining, as /readyz reports it.
package final class Readiness: Sendable {
    package enum Phase: String, Sendable { case loading, warming, ready, draining, failed }
    private let phase = Mutex<(Phase, String?)>((.loading, nil))

    package init() {}

    package func set(_ p: Phase, detail: String? = nil) { phase.withLock { $0 = (p, detail) } }
    package var current: (phase: Phase, detail: String?) { phase.withLock { ($0.0, $0.1) } }

    /// nil when ready; otherwise the phase name.
    package var notReadyReason: String? {
        let p = current.phase
        return p == .ready ? nil : p.rawValue
    }
}
