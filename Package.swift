// swift-tools-version:6.2
import PackageDescription

// No unsafe flags: SwiftPM refuses them in a package used as a dependency. `make` adds the speed flags
// (-Ounchecked, -target-cpu); a release build already optimises whole modules.
let package = Package(
    name: "AnySize",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "AnySize", targets: ["AnySize"]),
        .executable(name: "anysize", targets: ["anysize"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The HTTP server of `anysize serve` (AnySizeServer only; the AnySize library stays dependency-free). The
        // swift-configuration trait is off: the server reads its settings from the command line.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: ["FullFoundation"]),
        // The server's job queue and results in SQLite (system libsqlite3-dev).
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"]), .brew(["libpng"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // bfloat16 kernels in C (AVX512-BF16 intrinsics enabled per function and chosen at run time, so the
        // target needs no ISA flags and builds on every architecture).
        .target(name: "CAnySizeBF16"),
        .target(name: "AnySizeKernels", dependencies: ["CBLAS", "CAnySizeBF16"]),
        .target(name: "AnySize", dependencies: ["AnySizeKernels", "CPNG", "CZlib"],
                resources: [.copy("Resources")]),
        .target(name: "AnySizeServer", dependencies: [
            "AnySize", .product(name: "Hummingbird", package: "hummingbird"), .product(name: "GRDB", package: "GRDB.swift"),
        ], resources: [.copy("Web")]),
        .executableTarget(name: "anysize", dependencies: [
            "AnySize", "AnySizeServer", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "AnySizeKernelBench", dependencies: ["AnySizeKernels"]),
        // Kernel micro-benchmark (tools/conv-bench/main.swift); never run by the tests.
        .executableTarget(name: "conv-bench", dependencies: ["AnySizeKernels"], path: "tools/conv-bench"),
        .testTarget(name: "AnySizeKernelsTests", dependencies: ["AnySizeKernels"]),
        .testTarget(name: "AnySizeTests", dependencies: ["AnySize"], resources: [.copy("Fixtures")]),
        .testTarget(name: "AnySizeServerTests", dependencies: ["AnySizeServer", "AnySize"]),
    ],
    swiftLanguageModes: [.v5]
)
