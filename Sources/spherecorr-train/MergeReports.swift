import ArgumentParser
import CommandLineOptions
import Evaluation
import Foundation
import TensorFiles

struct MergeReports: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge-reports",
        abstract: "Merges the partial reports of `evaluate --shard K/N` (all N, any order) into the report of the unsharded run.",
        discussion: "Every score and count equals the unsharded run's; \"stats\" sums the shards' time, images embedded and cache hits.")

    @Argument(help: "The partial reports, one per shard.")
    var reports: [String]
    @Option(help: "Write the merged report (JSON) here.")
    var report: String
    @Option(help: "Also write the tables in the layout of the paper's Tables 1 and 2 (Markdown).")
    var markdown: String?

    func validate() throws {
        guard !reports.isEmpty else { throw ValidationError("give the partial reports of evaluate --shard K/N") }
    }

    func run() throws {
        var inputs: [(file: String, json: [String: Any])] = []
        for file in reports {
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
                throw CommandFailure("\(file): cannot read: \(error.localizedDescription)")
            }
            guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw CommandFailure("\(file): not a JSON object")
            }
            inputs.append((file, json))
        }
        do {
            let (result, config) = try ShardReport.merge(inputs)
            let json = try JSONSerialization.data(withJSONObject: Report.json(result, config: config), options: [.sortedKeys, .prettyPrinted])
            try AtomicFile.write([UInt8](json), to: URL(fileURLWithPath: report))
            if let markdown {
                let data = URL(fileURLWithPath: config["data"] as? String ?? "data").lastPathComponent
                try AtomicFile.write(Array(Report.markdown(result, title: "SphereCorr evaluation on \(data) (\(config["split"] as? String ?? "test"))").utf8),
                                     to: URL(fileURLWithPath: markdown))
            }
            print("merged \(reports.count) shards: \(result.pairsEvaluated) pairs -> \(report)")
        } catch let error as CommandFailure {
            throw error
        } catch {
            throw CommandFailure("\(error)")
        }
    }
}
