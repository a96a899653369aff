import ArgumentParser
import CommandLineOptions
import Correspondence
import Evaluation
import SPair
import TrainingData

@main
struct SpherecorrTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spherecorr-train",
        abstract: "Offline SphereCorr tools: DINOv2 features, sphere maps, PCK/KAP evaluation, point transfer, training, dataset checks, benchmarks.",
        subcommands: [Features.self, Sphere.self, Evaluate.self, MergeReports.self, Transfer.self, Bench.self, Fit.self, BenchTrain.self, CheckSPair.self])

    static func main() { mainCheckingBLASCore() }
}

// The trainer's own choices on the command line (the shared ones are in CommandLineOptions).
extension SPairSplit: ExpressibleByArgument {}
extension MetricSelection: ExpressibleByArgument {}
extension CachePrecision: ExpressibleByArgument {}
extension RefinementMethod: ExpressibleByArgument {}
