// swift-tools-version:6.0
// The Hummingbird 2 reference server of `make bench-http`: GET /livez → 200 "ok". Not part of the product.
import PackageDescription

let package = Package(
    name: "HummingbirdLivez",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        .executableTarget(
            name: "HummingbirdLivez",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
