/// Every error names the file and what was wrong with it.
package enum TensorFileError: Error, CustomStringConvertible, Equatable {
    case io(file: String, detail: String)
    case invalid(file: String, detail: String)
    case missingTensor(file: String, name: String)
    case dtype(file: String, name: String, detail: String)

    package var description: String {
        switch self {
        case let .io(f, d): "\(f): \(d)"
        case let .invalid(f, d): "\(f): \(d)"
        case let .missingTensor(f, n): "\(f): no tensor named '\(n)'"
        case let .dtype(f, n, d): "\(f): tensor '\(n)': \(d)"
        }
    }
}
