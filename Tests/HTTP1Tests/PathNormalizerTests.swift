import HTTP1
import Testing

@Suite("PathNormalizer (SERVICE-NOTES S11)")
struct PathNormalizerTests {
    @Test("normalizes", arguments: [
        ("/", "/"),
        ("/v1/match", "/v1/match"),
        ("/v1/match/", "/v1/match/"),
        ("//v1//match", "/v1/match"),
        ("/a/./b", "/a/b"),
        ("/a/b/../c", "/a/c"),
        ("/../a/b/../c/./d.html", "/a/c/d.html"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/a/%2e%2e/b", "/b"),
        ("/a/.%2E/b", "/b"),
        ("/a/..", "/"),
        ("/a/.", "/a/"),
        ("/%7Euser/f%20g", "/~user/f g"),
        ("/caf%C3%A9", "/caf\u{E9}"),
    ])
    func normalizes(input: String, expected: String) {
        #expect(PathNormalizer.normalize(input) == expected)
    }

    @Test("refuses", arguments: ["/a%00b", "/a%0d%0a", "/a%2Fb", "/a%2", "/a%zz", "/%C3", "/%7F", "a/b", ""])
    func refuses(input: String) {
        #expect(PathNormalizer.normalize(input) == nil)
    }

    @Test("works on RequestHead.path")
    func onHead() {
        let head = RequestHead(method: .get, target: "/v1/../v1//features?x=1#f")
        #expect(PathNormalizer.normalize(head.path) == "/v1/features")
    }
}
