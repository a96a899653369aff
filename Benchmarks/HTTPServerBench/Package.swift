// swift-tools-version:6.0
// Throwaway benchmark server for `make bench-http`: the repository's HTTP1, HTTPServer, Gzip and C module sources
// (symlinked, so they are the same files) plus a main.swift serving GET /livez. Not a product: the
// root package is untouched, and `package` access stays within this package.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "HTTPServerBench",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .systemLibrary(name: "CTLS", pkgConfig: "libssl"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib"),
        .target(name: "HTTP1", swiftSettings: swiftSettings),
        .target(name: "Gzip", dependencies: ["CZlib"], swiftSettings: swiftSettings),
        .target(name: "HTTPServer", dependencies: ["HTTP1", "CTLS", "Gzip", .product(name: "Logging", package: "swift-log")],
                swiftSettings: swiftSettings),
        .executableTarget(name: "HTTPServerBench", dependencies: ["HTTPServer", "HTTP1"], swiftSettings: swiftSettings),
    ]
)
