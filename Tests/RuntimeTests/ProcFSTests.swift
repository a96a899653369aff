import Testing
@testable import Runtime

/// The /proc readers on this Linux machine: fields found, units converted, missing files and lines give nil or 0.
@Suite struct ProcFSTests {
    @Test func statusFieldsAreBytes() {
        let rss = Measure.residentBytes(), peak = Measure.peakResidentBytes()
        #expect(rss > 1 << 20 && rss % 1024 == 0, "VmRSS \(rss)")
        #expect(peak >= rss, "VmHWM \(peak) < VmRSS \(rss)")
        #expect(ProcFS.statusBytes("NoSuchField:") == 0)
    }

    @Test func cpuFlagsAndMissingFiles() {
        #expect(ProcFS.cpuFlags().contains("fpu") || ProcFS.cpuFlags().contains("fp"), "flags: \(ProcFS.cpuFlags().sorted().prefix(5))")
        #expect(ProcFS.line(in: "/proc/self/status", withPrefix: "Name:") != nil)
        #expect(ProcFS.line(in: "/nonexistent/file", withPrefix: "x") == nil)
    }
}
