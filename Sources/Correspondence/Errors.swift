/// Why a matching or metric call could not run: inputs of inconsistent shapes or values.
package enum CorrespondenceError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Array sizes that do not fit together; the string says which.
    case shape(String)
    /// A sphere weight α ≠ 0 without sphere vectors for both images.
    case missingSphere
    /// A parameter outside its domain.
    case invalidArgument(String)

    package var description: String {
        switch self {
        case let .shape(s): "shape mismatch: \(s)"
        case .missingSphere: "a sphere weight alpha != 0 needs sphere vectors for both images"
        case let .invalidArgument(s): "invalid argument: \(s)"
        }
    }
}
