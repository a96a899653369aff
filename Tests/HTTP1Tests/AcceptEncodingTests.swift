import HTTP1
import Testing

/// `Accept-Encoding` negotiation (RFC 9110 §12.5.3), case by case: which coding a response gets.
@Suite("Accept-Encoding")
struct AcceptEncodingTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var field: String?
        var expected: ContentCoding
        var why: String
        var testDescription: String { "\(field.map { "'\($0)'" } ?? "absent") → \(expected.rawValue): \(why)" }
    }

    static let cases: [Case] = [
        Case(field: nil, expected: .identity, why: "no field: identity, what every client reads"),
        Case(field: "", expected: .identity, why: "empty field: only identity is acceptable"),
        Case(field: "gzip", expected: .gzip, why: "plain gzip"),
        Case(field: "GZip", expected: .gzip, why: "coding names are case-insensitive"),
        Case(field: "x-gzip", expected: .gzip, why: "x-gzip is gzip (RFC 9110 §8.4.1.3)"),
        Case(field: "gzip, deflate, br", expected: .gzip, why: "curl/browsers"),
        Case(field: "br", expected: .identity, why: "only a coding we do not offer"),
        Case(field: "deflate;q=1, gzip;q=0.5", expected: .gzip, why: "gzip is the only offered coding with weight"),
        Case(field: "gzip;q=0", expected: .identity, why: "gzip refused"),
        Case(field: "gzip;q=0.000", expected: .identity, why: "zero with decimals is still zero"),
        Case(field: "gzip; q=0.001", expected: .gzip, why: "the smallest positive weight, OWS before the parameter"),
        Case(field: "gzip;Q=0.5", expected: .gzip, why: "the parameter name is case-insensitive"),
        Case(field: "*", expected: .gzip, why: "* covers gzip"),
        Case(field: "*;q=0", expected: .identity, why: "* refuses everything; both refused → identity (no 406)"),
        Case(field: "*;q=0, gzip", expected: .gzip, why: "the explicit gzip beats *"),
        Case(field: "*, gzip;q=0", expected: .identity, why: "the explicit gzip;q=0 beats *"),
        Case(field: "identity", expected: .identity, why: "gzip not listed: weight 0"),
        Case(field: "gzip;q=0.5", expected: .gzip, why: "unlisted identity is only the fallback"),
        Case(field: "identity;q=0, gzip", expected: .gzip, why: "identity refused, gzip allowed"),
        Case(field: "gzip;q=0.5, identity;q=0.8", expected: .identity, why: "identity preferred by weight"),
        Case(field: "gzip;q=0.8, identity;q=0.5", expected: .gzip, why: "gzip preferred by weight"),
        Case(field: "gzip;q=0.5, identity;q=0.5", expected: .gzip, why: "a tie goes to gzip (smaller)"),
        Case(field: "gzip;q=0.5, *;q=0.9", expected: .identity, why: "* sets identity's weight only when identity is not listed: 0.5 vs 0.9 → identity"),
        Case(field: "gzip;q=1.5", expected: .identity, why: "q above 1 is invalid: the element is dropped"),
        Case(field: "gzip;q=0.5x", expected: .identity, why: "q with junk is invalid: dropped"),
        Case(field: "gzip;q=0.1234", expected: .identity, why: "more than three decimals is invalid"),
        Case(field: "gzip;q=", expected: .identity, why: "empty q is invalid"),
        Case(field: "gzip;level=9", expected: .identity, why: "an unknown parameter makes the element invalid"),
        Case(field: "gz ip", expected: .identity, why: "not a token"),
        Case(field: " ,  , gzip , ", expected: .gzip, why: "empty list elements are ignored (RFC 9110 §5.6.1)"),
        Case(field: "gzip, gzip;q=0", expected: .identity, why: "repeated coding: the last element wins"),
        Case(field: "\tgzip\t;\tq=1.0", expected: .gzip, why: "tabs are OWS; 1.0 is valid"),
    ]

    @Test("negotiate", arguments: cases)
    func negotiate(_ c: Case) {
        #expect(AcceptEncoding.negotiate(c.field) == c.expected, "\(c.why)")
    }

    @Test("parse keeps names lower-cased and weights in thousandths")
    func parse() {
        #expect(AcceptEncoding.parse("GZIP;q=0.5, br, *;q=0") == [
            .init(coding: "gzip", weight: 500), .init(coding: "br", weight: 1000), .init(coding: "*", weight: 0),
        ])
        #expect(AcceptEncoding.parse("gzip;q=2, deflate") == [.init(coding: "deflate", weight: 1000)])
    }
}
