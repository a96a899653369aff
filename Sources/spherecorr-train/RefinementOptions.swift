import ArgumentParser
import Correspondence

/// `--refine`, `--window`, `--temperature`: the sub-patch refinement evaluate and transfer share (METHOD §5).
/// The window is checked against the backbone's grid once the backbone is loaded.
struct RefinementOptions: ParsableArguments {
    @Option(help: "Sub-patch refinement of each match: none (the paper) or soft-argmax.")
    var refine: RefinementMethod = .none
    @Option(help: "soft-argmax: patches on each side of the argmax (default \(Refinement.defaultWindow); less than the patch grid's side).")
    var window: Int?
    @Option(help: "soft-argmax: softmax temperature, > 0 (default \(Refinement.defaultTemperature)).")
    var temperature: Double?

    func validate() throws { _ = try refinement() }

    func refinement() throws -> Refinement {
        do { return try Refinement.parse(method: refine, window: window, temperature: temperature) } catch {
            throw ValidationError("--\(error)")
        }
    }
}
