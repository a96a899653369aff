import ArgumentParser
import CommandLineOptions
import Foundation
import Runtime
import SPair

struct CheckSPair: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-spair",
        abstract: "Check that a directory is a usable SPair-71k-format dataset (what evaluate and fit read); exit 1 naming each problem.",
        discussion: """
        Reads every image and pair annotation of every split and checks that the images, masks and Layout/large lines they \
        name exist; decodes no image. scripts/fetch-spair runs it after extracting the archive.
        """)

    @Argument(help: "Dataset root (JPEGImages, ImageAnnotation, PairAnnotation, Segmentation, Layout).")
    var root: String
    @Option(help: "Problems listed before the count of the rest.")
    var maxProblems: Int = 20

    func validate() throws {
        guard maxProblems >= 0 else { throw ValidationError("--max-problems must be 0 or more; got \(maxProblems)") }
    }

    func run() throws {
        let report: SPairCheck
        do { report = try SPairDataset(root: URL(fileURLWithPath: root)).check() } catch { throw CommandFailure("\(root): \(error)") }
        print("\(root): \(report.categories.count) categories (\(report.categories.joined(separator: " ")))")
        for s in report.splits {
            print("  \(s.split.rawValue): \(s.pairs) pairs" + (s.layoutLines.map { ", Layout/large/\(s.split.rawValue).txt \($0) lines" } ?? ""))
        }
        print("  training images (distinct trn sources with masks): \(report.trainingImages)")
        guard report.isValid else {
            for p in report.problems.prefix(maxProblems) { logToStderr("\(root)/\(p)") }
            if report.problems.count > maxProblems { logToStderr("… and \(report.problems.count - maxProblems) more") }
            throw CommandFailure("\(root): not a usable SPair-71k-format dataset: \(report.problems.count) problem(s)")
        }
        print("OK: \(root)")
    }
}
