import ArgumentParser
import SPair

/// `--data`, `--split`, `--categories`, `--skip-invalid`: which SPair-format pairs a command reads (evaluate,
/// cache-features).
struct PairsOptions: ParsableArguments {
    @Option(help: "Dataset root (SPair-71k layout: JPEGImages, ImageAnnotation, PairAnnotation, …).")
    var data: String
    @Option(help: "Split whose pairs are read.")
    var split: SPairSplit = .test
    @Option(parsing: .upToNextOption, help: "Only these categories (space- or comma-separated).")
    var categories: [String] = []
    @Flag(help: "Skip pairs whose image or annotation is missing or malformed (evaluate counts them in its report).")
    var skipInvalid = false

    /// The categories asked for; nil: all of them.
    var only: [String]? {
        let c = categories.flatMap { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
        return c.isEmpty ? nil : c
    }
}
