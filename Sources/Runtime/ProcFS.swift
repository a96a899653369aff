#if canImport(Glibc)
import Glibc
#endif

/// Linux /proc files read line by line (the one getline loop of the code base).
package enum ProcFS {
    /// The first line of `path` that starts with `prefix`, without the prefix; nil when the file or the line is missing.
    package static func line(in path: String, withPrefix prefix: String) -> Substring? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var buffer: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(buffer) }
        while getline(&buffer, &capacity, f) > 0, let buffer {
            let s = String(cString: buffer)
            if s.hasPrefix(prefix) { return s.dropFirst(prefix.count) }
        }
        return nil
    }

    /// A `/proc/self/status` field given in kB (`VmHWM:`, `VmRSS:`), in bytes; 0 when unavailable.
    package static func statusBytes(_ key: String) -> Int {
        line(in: "/proc/self/status", withPrefix: key)
            .flatMap { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) } }
            .map { $0 * 1024 } ?? 0
    }

    /// CPU feature flags of the first processor in /proc/cpuinfo.
    package static func cpuFlags() -> Set<String> {
        guard let rest = line(in: "/proc/cpuinfo", withPrefix: "flags"), let colon = rest.firstIndex(of: ":") else { return [] }
        return Set(rest[rest.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init))
    }
}
