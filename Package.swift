// swift-tools-version:5.10
import PackageDescription

// No unsafe flags: SwiftPM refuses them in a package used as a dependency. `make` adds the speed flags
// (-Ounchecked, -target-cpu); a release build already optimises whole modules.
let package = Package(
    name: "AnySize",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "AnySize", targets: ["AnySize"]),
        .executable(name: "anysize", targets: ["anysize"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"]), .brew(["libpng"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "AnySizeKernels", dependencies: ["CBLAS"]),
        .target(name: "AnySize", dependencies: ["AnySizeKernels", "CPNG", "CZlib"],
                resources: [.copy("Resources")]),
        .executableTarget(name: "anysize", dependencies: [
            "AnySize", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "AnySizeKernelBench", dependencies: ["AnySizeKernels"]),
        // Kernel micro-benchmark (tools/conv-bench/main.swift); never run by the tests.
        .executableTarget(name: "conv-bench", dependencies: ["AnySizeKernels"], path: "tools/conv-bench"),
        .testTarget(name: "AnySizeKernelsTests", dependencies: ["AnySizeKernels"]),
        .testTarget(name: "AnySizeTests", dependencies: ["AnySize"], resources: [.copy("Fixtures")]),
    ]
)
