import HTTP1
import Testing

/// If-None-Match against an ETag (RFC 9110 §13.1.2: weak comparison; `*`; an invalid field is ignored).
@Suite("EntityTag.ifNoneMatch")
struct EntityTagTests {
    @Test("matches", arguments: [
        (#""abc""#, #""abc""#, true),
        (#"W/"abc""#, #""abc""#, true),            // weak comparison
        (#""abc""#, #"W/"abc""#, true),
        (#""x", "abc""#, #""abc""#, true),         // a list
        ("  \"x\" ,\t\"abc\"  ", #""abc""#, true), // OWS around members (SP and HTAB)
        (#""x",,"abc""#, #""abc""#, true),         // empty list members are allowed (RFC 9110 §5.6.1)
        ("*", #""abc""#, true),
        (#""abd""#, #""abc""#, false),
        (#""ABC""#, #""abc""#, false),             // opaque tags compare byte for byte
        (#""abc"#, #""abc""#, false),              // unterminated
        ("abc", #""abc""#, false),                 // unquoted
        (#""abc", bogus"#, #""abc""#, false),      // an invalid member invalidates the field
        (#""a"b""#, #""a"b""#, false),             // DQUOTE inside
        (#"w/"abc""#, #""abc""#, false),           // W is upper case
        ("", #""abc""#, false),
        (#""abc""#, "abc", false),                 // a malformed current tag never matches
    ])
    func matches(_ header: String, _ etag: String, _ expected: Bool) {
        #expect(EntityTag.ifNoneMatch(header, matches: etag) == expected, "If-None-Match: \(header) vs ETag \(etag)")
    }
}
