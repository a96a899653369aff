#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`, computed without Foundation.
package enum HTTPDate {
    private static let dayNames = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Formats seconds since 1970-01-01T00:00:00Z.
    package static func imfFixdate(epochSeconds: Int) -> String {
        let days = floorDiv(epochSeconds, 86_400)
        let secondsOfDay = epochSeconds - days * 86_400
        // 1970-01-01 was a Thursday (index 4 with Sunday = 0).
        let weekday = ((days % 7) + 11) % 7
        let (year, month, day) = civilFromDays(days)
        let hour = secondsOfDay / 3600
        let minute = secondsOfDay / 60 % 60
        let second = secondsOfDay % 60
        return "\(dayNames[weekday]), \(pad2(day)) \(monthNames[month - 1]) \(pad4(year)) "
            + "\(pad2(hour)):\(pad2(minute)):\(pad2(second)) GMT"
    }

    /// The current time (time(2)), formatted.
    package static func now() -> String {
        imfFixdate(epochSeconds: Int(time(nil)))
    }

    /// Days since 1970-01-01 → (year, month 1...12, day 1...31), proleptic Gregorian
    /// (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
    static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return (y, m, d)
    }

    private static func floorDiv(_ a: Int, _ b: Int) -> Int {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }

    private static func pad2(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }

    private static func pad4(_ v: Int) -> String {
        let s = "\(v)"
        return s.count >= 4 ? s : String(repeating: "0", count: 4 - s.count) + s
    }
}
