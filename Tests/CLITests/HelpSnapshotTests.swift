import Foundation
import Testing

/// `--help` of both executables and every trainer subcommand, against committed snapshots: a flag, a default or a
/// help text that changes shows up in review. After an intended change: `SPHERECORR_WRITE_EXPECTED=1 swift test
/// --filter HelpSnapshotTests` (it records an issue so that the regenerating run never passes), then run again.
@Suite struct HelpSnapshotTests {
    static let commands: [(tool: String, args: [String])] = [
        ("spherecorr-server", ["--help"]),
        ("spherecorr-train", ["--help"]),
    ] + ["features", "sphere", "evaluate", "merge-reports", "transfer", "bench", "fit", "bench-train", "check-spair"].map { ("spherecorr-train", [$0, "--help"]) }

    @Test(arguments: commands.indices)
    func helpMatchesTheSnapshot(_ i: Int) throws {
        let (tool, args) = Self.commands[i]
        let name = ([tool] + args.dropLast()).joined(separator: "-") + ".help.txt"
        let snapshot = repoRoot.appendingPathComponent("Tests/Fixtures/cli").appendingPathComponent(name)
        // A fixed width: ArgumentParser wraps at the terminal's (80 without one).
        let r = try run(tool, args, extraEnvironment: ["COLUMNS": "100"])
        #expect(r.status == 0, "\(tool) \(args.joined(separator: " ")) exited \(r.status): \(r.stderr)")
        if ProcessInfo.processInfo.environment["SPHERECORR_WRITE_EXPECTED"] == "1" {
            try r.stdout.write(to: snapshot, atomically: true, encoding: .utf8)
            Issue.record("SPHERECORR_WRITE_EXPECTED=1: rewrote \(snapshot.path); unset it and run again to compare")
            return
        }
        let expected = try String(contentsOf: snapshot, encoding: .utf8)
        let got = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let want = expected.split(separator: "\n", omittingEmptySubsequences: false)
        if let k = (0..<min(got.count, want.count)).first(where: { got[$0] != want[$0] }) ?? (got.count == want.count ? nil : min(got.count, want.count)) {
            Issue.record("\(name) differs at line \(k + 1): got '\(k < got.count ? got[k] : "<end>")', snapshot '\(k < want.count ? want[k] : "<end>")'")
        }
    }
}
