import Correspondence
import Features
import Imaging
import Foundation
import Testing
import Kernels
import TensorFiles
@testable import Service

@Suite struct ContentNegotiationTests {
    let offered: [TensorFormat] = [.npy, .safetensors, .raw, .json]

    @Test func absentOrWildcardGivesTheRouteDefault() {
        #expect(ContentNegotiation.choose(accept: nil, offered: offered) == .npy)
        #expect(ContentNegotiation.choose(accept: "", offered: offered) == .npy)
        #expect(ContentNegotiation.choose(accept: "*/*", offered: offered) == .npy)
    }

    @Test func explicitTypesQualitiesAndAliases() {
        #expect(ContentNegotiation.choose(accept: "application/json", offered: offered) == .json)
        #expect(ContentNegotiation.choose(accept: "application/json;q=0.5, application/x-npy;q=0.9", offered: offered) == .npy)
        #expect(ContentNegotiation.choose(accept: "application/octet-stream;format=safetensors", offered: offered) == .safetensors)
        #expect(ContentNegotiation.choose(accept: "application/octet-stream", offered: offered) == .raw)
        #expect(ContentNegotiation.choose(accept: "application/*", offered: [.json, .png]) == .json)
    }

    @Test func nothingAcceptableIsNil() {
        #expect(ContentNegotiation.choose(accept: "text/html", offered: offered) == nil)
        #expect(ContentNegotiation.choose(accept: "application/json;q=0", offered: [.json]) == nil)
        #expect(ContentNegotiation.choose(accept: "image/png", offered: offered) == nil)
    }
}

@Suite struct TensorEncoderTests {
    let t = OutputTensor(name: "features", shape: [2, 3], values: [0.1, -2, 3.5, .leastNonzeroMagnitude, 1e30, 0])

    @Test func npyAndRawCarryTheExactValues() throws {
        let npy = TensorEncoder.encode([t], as: .npy, info: [:])
        let a = try NPY.decode(npy.body)
        let values = try a.floats()
        #expect(a.shape == [2, 3] && values == t.values)
        let raw = TensorEncoder.encode([t], as: .raw, info: [:])
        #expect(raw.body.count == 24 && raw.headers.contains { $0 == ("X-Tensor-Shape", "2,3") })
    }

    @Test func jsonBase64IsBitIdenticalAndArraysRoundTrip() throws {
        let j = TensorEncoder.encode([t], as: .json, info: ["model_version": "m"])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(j.body)) as? [String: Any])
        let b64 = try #require(obj["data"] as? String)
        let data = try #require(Data(base64Encoded: b64))
        #expect(data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } == t.values)
        #expect(obj["shape"] as? [Int] == [2, 3] && obj["model_version"] as? String == "m")
        let arr = TensorEncoder.encode([t], as: .json, info: [:], jsonArrays: true)
        let o2 = try #require(try JSONSerialization.jsonObject(with: Data(arr.body)) as? [String: Any])
        #expect((o2["data"] as? [Double])?.map { Float($0) } == t.values)
    }

    @Test func safetensorsHoldsEveryTensorAndTheInfo() throws {
        let s = OutputTensor(name: "sphere", shape: [1, 3], values: [0, 0, 1])
        let e = TensorEncoder.encode([t, s], as: .safetensors, info: ["grid": "2,3"])
        let f = try SafeTensorsFile(bytes: e.body)
        let features = try f.floats("features"), sphere = try f.floats("sphere")
        #expect(features == t.values && sphere == s.values && f.metadata["grid"] == "2,3")
    }
}

@Suite struct InferenceQueueTests {
    @Test func fullQueueRefusesAtOnceAndDeadlinesExpire() throws {
        let q = InferenceQueue(maxQueue: 1)
        let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) {
            _ = try? q.run(deadline: .now + .seconds(10), isCancelled: { false }) { started.signal(); release.wait() }
        }
        started.wait()
        // One may wait: it expires at its deadline.
        DispatchQueue.global().async(group: group) {
            #expect(throws: InferenceQueue.Rejection.deadlineExceeded) {
                try q.run(deadline: .now + .milliseconds(1500), isCancelled: { false }) {}
            }
        }
        let until = Date().addingTimeInterval(5)
        while q.depth < 1 && Date() < until { Thread.sleep(forTimeInterval: 0.01) }
        #expect(q.depth == 1)
        // The queue is full (1 running, 1 waiting): refused at once.
        #expect(throws: InferenceQueue.Rejection.overloaded(queued: 1)) { try q.run(deadline: .now + .seconds(5), isCancelled: { false }) {} }
        while q.depth > 0 && Date() < until { Thread.sleep(forTimeInterval: 0.01) }
        // A client that went away is dropped before it runs.
        #expect(throws: InferenceQueue.Rejection.cancelled) { try q.run(deadline: .now + .seconds(5), isCancelled: { true }) {} }
        release.signal()
        group.wait()
        // Afterwards the queue serves again, in order.
        let answer = try q.run(deadline: .now + .seconds(1), isCancelled: { false }) { 42 }.value
        #expect(answer == 42)
        q.drain()
        #expect(throws: InferenceQueue.Rejection.draining) { try q.run(deadline: .now + .seconds(1), isCancelled: { false }) {} }
    }
}

@Suite struct FeatureCacheTests {
    @Test func leastRecentlyUsedIsEvictedWithinTheByteBound() {
        let c = FeatureCache(capacityBytes: 3 * 400)
        func key(_ i: Int) -> FeatureCache.Key { .init(sha256: "\(i)", resolution: 448, backbone: "b") }
        for i in 0..<3 { c.put(key(i), .init(features: FloatStorage(count: 100), width: 1, height: 1)) }
        _ = c.get(key(0))  // 0 becomes most recent
        c.put(key(3), .init(features: FloatStorage(count: 100), width: 1, height: 1))
        #expect(c.get(key(1)) == nil && c.get(key(0)) != nil && c.get(key(3)) != nil)
        #expect(c.stats.bytes <= 1200 && c.stats.entries == 3)
        // An entry larger than the whole cache is not stored.
        c.put(key(9), .init(features: FloatStorage(count: 1000), width: 1, height: 1))
        #expect(c.get(key(9)) == nil)
    }

    /// Issue #14: sphere vectors live beside the features, for one model version, within the byte bound.
    @Test func sphereVectorsAreKeptPerModelVersion() {
        let c = FeatureCache(capacityBytes: 3 * 400 + 2 * 12)
        func key(_ i: Int) -> FeatureCache.Key { .init(sha256: "\(i)", resolution: 448, backbone: "b") }
        for i in 0..<3 { c.put(key(i), .init(features: FloatStorage(count: 100), width: 1, height: 1)) }
        let s = FloatStorage([1, 0, 0])
        c.putSphere(key(0), version: "v1", s)
        #expect(c.sphere(key(0), version: "v1") === s && c.sphere(key(0), version: "v2") == nil && c.sphere(key(1), version: "v1") == nil)
        #expect(c.stats.bytes == 3 * 400 + 12 && c.stats.entries == 3)
        c.putSphere(key(1), version: "v1", FloatStorage([0, 1, 0]))
        c.putSphere(key(2), version: "v1", FloatStorage([0, 0, 1]))
        // Over the bound: the least recently used other entry goes, never the one just given its sphere.
        #expect(c.stats.bytes <= 3 * 400 + 2 * 12 && c.stats.entries == 2)
        #expect(c.sphere(key(2), version: "v1") != nil && c.sphere(key(0), version: "v1") == nil)
        // Not cached: nothing to attach to.
        c.putSphere(key(7), version: "v1", s)
        #expect(c.sphere(key(7), version: "v1") == nil)
    }

    /// Issue #14: values derived from an entry count in the bound, go with new sphere vectors, and are not kept
    /// when the entry with them would not fit at all.
    @Test func derivedValuesCountInTheBound() {
        let c = FeatureCache(capacityBytes: 3 * 400 + 100)
        func key(_ i: Int) -> FeatureCache.Key { .init(sha256: "\(i)", resolution: 448, backbone: "b") }
        for i in 0..<3 { c.put(key(i), .init(features: FloatStorage(count: 100), width: 1, height: 1)) }
        c.putDerived(key(0), name: "a", .init("zero", bytes: 60))
        #expect(c.derived(key(0), name: "a") as? String == "zero" && c.derived(key(0), name: "b") == nil && c.derived(key(1), name: "a") == nil)
        #expect(c.stats.bytes == 3 * 400 + 60 && c.stats.entries == 3)
        // Over the bound: the least recently used other entry goes (1, once 0 has been read).
        _ = c.get(key(0))
        c.putDerived(key(2), name: "a", .init("two", bytes: 60))
        #expect(c.stats.entries == 2 && c.get(key(1)) == nil && c.stats.bytes == 2 * 400 + 120)
        // New sphere vectors drop what was derived (it may have used the old ones).
        c.putSphere(key(0), version: "v2", FloatStorage([1, 0, 0]))
        #expect(c.derived(key(0), name: "a") == nil && c.stats.bytes == 2 * 400 + 12 + 60)
        // An entry that could never fit with it keeps its features and loses nothing else.
        c.putDerived(key(2), name: "big", .init("big", bytes: 2000))
        #expect(c.derived(key(2), name: "big") == nil && c.derived(key(2), name: "a") as? String == "two")
        c.putDerived(key(9), name: "a", .init("nine", bytes: 4))
        #expect(c.derived(key(9), name: "a") == nil)
    }

    /// Issue #14: a warm match takes each image's normalised descriptors from the cache: they equal what a fresh
    /// `MatchSide` computes, per candidate set and sphere version, and the cache counts their bytes.
    @Test func matchSidesAreCachedAndEqualFreshOnes() throws {
        let g = 4, d = 8, r = 56
        func image(_ i: Int, width: Int, height: Int) -> (EmbeddedImage, FloatStorage) {
            var rng = SplitMix64(seed: UInt64(i))
            let f = FloatStorage((0..<(g * g * d)).map { _ in Float.random(in: -1...1, using: &rng) })
            let s = FloatStorage((0..<(g * g * 3)).map { _ in Float.random(in: -1...1, using: &rng) })
            let key = FeatureCache.Key(sha256: "\(i)", resolution: r, backbone: "b")
            return (EmbeddedImage(width: width, height: height, transform: KeypointTransform(imageWidth: width, imageHeight: height, resolution: r),
                                  features: f, cached: true, key: key), s)
        }
        let (a, sa) = image(1, width: 100, height: 40), (b, sb) = image(2, width: 30, height: 60)
        let c = FeatureCache(capacityBytes: 1 << 20)
        for img in [a, b] { c.put(img.key, .init(features: img.features, width: img.width, height: img.height)) }
        let before = c.stats.bytes
        let images = [a, b, a]  // the same image twice in one request: one side
        for restrict in [true, false] {
            for spheres in [[sa, sb, sa], nil] as [[FloatStorage]?] {
                let sides = try c.matchSides(images, spheres: spheres, restrict: restrict, version: "v1")
                let again = try c.matchSides(images, spheres: spheres, restrict: restrict, version: "v1")
                for (k, img) in images.enumerated() {
                    let fresh = try MatchSide(MatchImage(width: img.width, height: img.height, transform: img.transform, features: img.features,
                                                         sphere: spheres?[k]), restrict: restrict)
                    for side in [sides[k], again[k]] {
                        #expect(side.rows == fresh.rows)
                        #expect(side.descriptors.features.values == fresh.descriptors.features.values)
                        #expect(side.descriptors.sphere?.values == fresh.descriptors.sphere?.values)
                    }
                    let name = FeatureCache.matchSideName(restrict: restrict, sphereVersion: spheres == nil ? nil : "v1")
                    #expect(c.derived(img.key, name: name) is MatchSide)
                }
                // Letterbox padding is no candidate when restricted.
                #expect(restrict ? sides[0].rows.count < g * g : sides[0].rows.count == g * g)
            }
        }
        // Four sides per image, each counted.
        let sides = try [true, false].flatMap { rs in try [true, false].map { sp in
            try c.matchSides([a, b], spheres: sp ? [sa, sb] : nil, restrict: rs, version: "v1")
        } }
        #expect(c.stats.bytes == before + sides.reduce(0) { $0 + $1[0].bytes + $1[1].bytes })
        #expect(sides[0][0].bytes == (sides[0][0].rows.count * (2 * d + 3)) * 4 + sides[0][0].rows.count * 8)
        // Without a cache (capacity 0) sides are still built, and nothing is kept.
        let none = FeatureCache(capacityBytes: 0)
        let uncached = try none.matchSides(images, spheres: nil, restrict: true, version: "v1")
        #expect(uncached[2].descriptors.features.values == uncached[0].descriptors.features.values && none.stats.bytes == 0)
    }
}

@Suite struct JSONWriterTests {
    @Test func sortedKeysEscapesAndNumbersParseBackWithFoundation() throws {
        let value: [String: Any] = [
            "b": [1, 2.5, -0.125, 1e-7] as [Any], "a": "quote \" backslash \\ newline \n tab \t bell \u{07} é",
            "c": ["z": true, "y": false, "x": NSNull()] as [String: Any], "f": [Float(0.1), Float(3), Float(-2.5e-8)],
            "i": 448, "d": 0.896_000_027_656_555_2,
        ]
        let bytes = try JSONWriter.encode(value)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix(#"{"a":"quote \" backslash \\ newline \n tab \t bell \u0007 é","b":[1,2.5,-0.125,1e-07],"#))
        let back = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(back["i"] as? Int == 448)
        // Swift's shortest round-trip form (Foundation's Linux parser is itself off in the last digit, so check the text).
        #expect(text.contains(#""d":0.8960000276565552,"#))
        let floats = try #require(back["f"] as? [Double]).map(Float.init)
        #expect(floats == [0.1, 3, -2.5e-8])  // float32 values survive the round trip exactly
        #expect((back["c"] as? [String: Any])?["z"] as? Bool == true)
    }

    @Test func nonFiniteNumbersAreRefused() {
        #expect(throws: JSONWriter.NonFinite.self) { try JSONWriter.encode(["x": Double.nan]) }
        #expect(throws: JSONWriter.NonFinite.self) { try JSONWriter.encode([Float.infinity]) }
        #expect(throws: JSONWriter.NonFinite.self) { try JSONWriter.encode(["x": [1.0, -Double.infinity]]) }
    }

    /// Issue #14: the types taken by identity (a match record's) encode as their boxed `[Any]` forms did.
    @Test func typedArraysEncodeAsBoxedOnes() throws {
        let typed: [String: Any] = ["source": [12.5, 3.0], "grid": [32, 32], "score": 0.75, "visible": true, "n": 7, "s": "x",
                                    "m": [["t": [1.0, 2.0]] as [String: Any]]]
        let boxed: [String: Any] = ["source": [12.5, 3.0] as [Any], "grid": [32, 32] as [Any], "score": 0.75 as Any, "visible": true as Any,
                                    "n": 7 as Any, "s": "x" as Any, "m": [["t": [1.0, 2.0] as [Any]] as [String: Any]] as [Any]]
        let a = String(decoding: try JSONWriter.encode(typed), as: UTF8.self)
        #expect(a == String(decoding: try JSONWriter.encode(boxed), as: UTF8.self))
        #expect(a == #"{"grid":[32,32],"m":[{"t":[1,2]}],"n":7,"s":"x","score":0.75,"source":[12.5,3],"visible":true}"#)
    }
}
