// swift-tools-version:6.0
import PackageDescription

// Dependencies point one way: C shims → Runtime → Kernels/TensorFiles/Imaging → Transformer → DINOv2/SphereMap → executables.
// HTTP1 knows nothing of the model.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "SphereCorr",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "spherecorr-train", targets: ["spherecorr-train"]),
        .executable(name: "spherecorr-server", targets: ["spherecorr-server"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // System libraries (Debian packages installed by scripts/install-deps).
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg62-turbo-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CTLS", pkgConfig: "libssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // Hand-written AVX2/FMA kernels (fused attention, activations), chosen at run time by CPU features.
        // -O2 in debug builds too: unoptimised, they would make every test that runs a model crawl.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O2"])]),
        // The process, not the numerics: stderr logging, /proc readers, timing, the malloc arena cap, OpenBLAS core
        // detection and the re-exec that fixes it.
        .target(name: "Runtime", dependencies: ["COpenBLAS"], swiftSettings: swiftSettings),
        // Numerics: plain functions over buffers; no model knowledge.
        .target(name: "Kernels", dependencies: ["COpenBLAS", "CDNNL", "CKernels", "Runtime"], swiftSettings: swiftSettings),
        // safetensors and .npy files, read and written; torch.save checkpoints (ZIP + restricted pickle), read.
        .target(name: "TensorFiles", dependencies: ["Gzip"], swiftSettings: swiftSettings),
        // SHA-256 from OpenSSL's libcrypto: content keys of the feature and view caches, bundle digests.
        .target(name: "Hashing", dependencies: ["CCrypto"], swiftSettings: swiftSettings),
        // setjmp/longjmp guards so libjpeg/libpng errors return instead of exiting (Swift cannot setjmp).
        .target(name: "CImageShims", dependencies: ["CJPEG", "CPNG"]),
        // Image decoding (Pillow-exact) and the resamplers of SPEC §2.
        .target(name: "Imaging", dependencies: ["CJPEG", "CPNG", "CImageShims"], swiftSettings: swiftSettings),
        // The pre-norm transformer block (weights, forward) the backbones and the sphere mapper share, and its MLP half.
        .target(name: "Transformer", dependencies: ["Kernels"], swiftSettings: swiftSettings),
        // The DINOv2 vision transformer: config, weights by checkpoint name, forward pass.
        .target(name: "DINOv2", dependencies: ["Kernels", "Transformer", "TensorFiles"], swiftSettings: swiftSettings),
        // The spherical mapper f_S and prototypes S_Z (SPEC §3), sphere bundles.
        .target(name: "SphereMap", dependencies: ["Kernels", "Transformer", "TensorFiles"], swiftSettings: swiftSettings),
        // RFC 8259 JSON, read strictly and within limits: the service's request parts and the SPair annotation files.
        .target(name: "JSON", swiftSettings: swiftSettings),
        // The one feature pipeline: image → letterbox → normalise → backbone features, keyed by content, backbone
        // identity and resolution, in memory (the server) or on disk (evaluation); shards of a list (K/N).
        .target(name: "Features", dependencies: ["DINOv2", "Imaging", "Kernels", "TensorFiles", "Hashing"], swiftSettings: swiftSettings),
        // The SPair-71k on-disk format: annotations, pairs, splits, layouts, masks.
        .target(name: "SPair", dependencies: ["Imaging", "JSON"], swiftSettings: swiftSettings),
        // The training data of SPEC §2.1/§2.2: training lists (SPair-71k, Freiburg Cars), masks, the paper's
        // RandomResizedCrop, backbone features of augmented views and the view cache.
        .target(name: "TrainingData", dependencies: ["Features", "SPair", "Imaging", "Kernels", "TensorFiles", "DINOv2", "Hashing"], swiftSettings: swiftSettings),
        // Training of f_S and S_Z (SPEC §4): backward passes, the four losses, Adam, resumable trainer state.
        .target(name: "Training", dependencies: ["Kernels", "Transformer", "SphereMap", "TensorFiles"], swiftSettings: swiftSettings),
        // spherecorr-train fit: the epoch loop around the trainer, view cache, atomic bundles, resume, logs, plots.
        .target(name: "TrainingRun", dependencies: ["Features", "TrainingData", "Training", "Evaluation", "Visualization", "SPair", "DINOv2", "Runtime",
                                                    "SphereMap", "TensorFiles", "Kernels", "Imaging"], swiftSettings: swiftSettings),
        // Matching (SPEC §5) and the paper's metrics, PCK and KAP (SPEC §6).
        .target(name: "Correspondence", dependencies: ["Kernels", "Imaging"], swiftSettings: swiftSettings),
        // Pictures: sphere maps, matches, charts (PNG/SVG).
        .target(name: "Visualization", dependencies: ["Imaging"], swiftSettings: swiftSettings),
        // spherecorr-train evaluate: the paper's PCK and KAP on SPair-format data, reports, plots, feature cache.
        .target(name: "Evaluation", dependencies: ["Features", "SPair", "Correspondence", "DINOv2", "SphereMap", "Imaging", "TensorFiles",
                                                   "Kernels", "Runtime", "Visualization", "Hashing"], swiftSettings: swiftSettings),
        // HTTP/1.1 protocol as pure value types: parser, serializer, multipart, Accept-Encoding. No I/O.
        .target(name: "HTTP1", swiftSettings: swiftSettings),
        // gzip (RFC 1952) through zlib: Content-Encoding of responses.
        .target(name: "Gzip", dependencies: ["CZlib"], swiftSettings: swiftSettings),
        // Sockets, connections, TLS (OpenSSL), gzip responses, router, problem+json, graceful shutdown. Knows nothing of
        // the model.
        .target(name: "HTTPServer", dependencies: ["HTTP1", "CTLS", "Gzip", .product(name: "Logging", package: "swift-log")],
                swiftSettings: swiftSettings),

        // The correspondence service: model store and hot reload, inference queue, caches, endpoints, metrics.
        .target(
            name: "Service",
            dependencies: [
                "DINOv2", "Features", "SphereMap", "SPair", "Imaging", "Correspondence", "TensorFiles", "Kernels", "Runtime", "HTTPServer", "HTTP1",
                "Visualization", "Hashing", "JSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings),

        // The flags both executables share (backbone, engine) as one OptionGroup each, choices as enums.
        .target(name: "CommandLineOptions", dependencies: ["DINOv2", "Kernels", "Runtime", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                swiftSettings: swiftSettings),

        .executableTarget(
            name: "spherecorr-server",
            dependencies: ["CommandLineOptions", "Service", "HTTPServer", "Imaging", "Kernels", "Runtime",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "spherecorr-train",
            dependencies: [
                "CommandLineOptions", "DINOv2", "Features", "JSON", "Correspondence", "Imaging", "TensorFiles", "Kernels", "Runtime", "SphereMap", "Evaluation", "SPair", "Training",
                "TrainingData", "TrainingRun", "Hashing",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings),

        // What every test suite shares: one `expectClose` that says where and by how much.
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "TestSupportTests", dependencies: ["TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime"], swiftSettings: swiftSettings),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "Runtime"], swiftSettings: swiftSettings),
        .testTarget(name: "TensorFilesTests", dependencies: ["TensorFiles"], swiftSettings: swiftSettings),
        .testTarget(name: "HashingTests", dependencies: ["Hashing"], swiftSettings: swiftSettings),
        .testTarget(name: "ImagingTests", dependencies: ["TestSupport", "Imaging", "TensorFiles", "Kernels"], swiftSettings: swiftSettings),
        .testTarget(name: "DINOv2Tests", dependencies: ["TestSupport", "DINOv2", "TensorFiles", "Kernels"], swiftSettings: swiftSettings),
        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1"], swiftSettings: swiftSettings),
        .testTarget(name: "JSONTests", dependencies: ["JSON"], swiftSettings: swiftSettings),
        .testTarget(name: "FeaturesTests", dependencies: ["Features", "DINOv2", "SPair", "TensorFiles", "Kernels"], swiftSettings: swiftSettings),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "SPair", "Correspondence", "TensorFiles", "DINOv2", "SphereMap"],
                    swiftSettings: swiftSettings),
        .testTarget(name: "ServiceTests", dependencies: ["Service", "Features", "HTTPServer", "HTTP1", "TensorFiles", "SphereMap", "DINOv2",
                                                    "Correspondence", "Imaging"],
                    swiftSettings: swiftSettings),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "HTTP1", "Gzip"], swiftSettings: swiftSettings),
        .testTarget(name: "GzipTests", dependencies: ["Gzip"], swiftSettings: swiftSettings),
        .testTarget(name: "SphereMapTests", dependencies: ["TestSupport", "SphereMap", "TensorFiles", "Kernels"], swiftSettings: swiftSettings),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "SphereMap", "TensorFiles", "Kernels"],
                    swiftSettings: swiftSettings),
        .testTarget(name: "SPairTests", dependencies: ["SPair"], swiftSettings: swiftSettings),
        .testTarget(name: "TrainingDataTests", dependencies: ["Features", "TrainingData", "SPair", "Imaging", "TensorFiles", "DINOv2", "Kernels"],
                    swiftSettings: swiftSettings),
        .testTarget(name: "CorrespondenceTests", dependencies: ["TestSupport", "Correspondence", "Imaging", "TensorFiles"], swiftSettings: swiftSettings),
        // Runs the built executables as a user would (exit codes, messages, output files).
        .testTarget(name: "CLITests", dependencies: ["TensorFiles", "SphereMap", "Imaging"], swiftSettings: swiftSettings),
    ]
)
