import AnySize
import Foundation

/// How `anysize serve` runs: where it listens, which models it offers, and its limits.
public struct ServerConfiguration: Sendable {
    /// The model loaded at start (a diffusers folder or a .safetensors file).
    public var modelPath: String
    /// More models `POST /sdapi/v1/options` (`sd_model_checkpoint`) can switch to: its diffusers folders and
    /// .safetensors files.
    public var modelsDirectory: String?
    public var host: String = "127.0.0.1"
    /// 0 picks a free port (tests); `ServerHandle.port` tells which.
    public var port: Int = 7860
    /// Finished jobs stay in the store (`GET /anysize/v1/jobs/{id}`) this many seconds.
    public var resultLifetime: TimeInterval = 24 * 3600
    /// Folder of the server's state: the job store (jobs.sqlite) and the images saved with `save_images`.
    public var stateDirectory: String = "anysize-state"
    /// HTTP Basic credentials; empty = no authentication.
    public var credentials: [(user: String, password: String)] = []
    /// Most requests waiting behind the running one; more answer 429.
    public var queueLimit: Int = 16
    /// Largest request body in bytes (init images are base64 in JSON); larger answer 413.
    public var bodyLimit: Int = 32 << 20
    /// Number format of the UNet of every model the server loads (`--precision`; A1111 has no request field for it).
    public var precision: Precision = .fp32

    public init(modelPath: String) {
        self.modelPath = modelPath
    }

    /// Parses `--api-auth`: `USER:PASS`, several separated by commas, as A1111's flag.
    public static func parseCredentials(_ text: String) throws -> [(user: String, password: String)] {
        try text.split(separator: ",").map { part -> (user: String, password: String) in
            let pair = String(part)
            guard let colon = pair.firstIndex(of: ":"), colon != pair.startIndex, pair.index(after: colon) != pair.endIndex else {
                throw AnySizeError(.invalidArgument, "--api-auth '\(pair)' is not USER:PASS; e.g. --api-auth alice:secret")
            }
            return (String(pair[..<colon]), String(pair[pair.index(after: colon)...]))
        }
    }

    /// Checks the values that need no model.
    public func validate() throws {
        guard (0 ... 65535).contains(port) else {
            throw AnySizeError(.invalidArgument, "--port \(port): use 1 to 65535 (0 picks a free port)")
        }
        guard queueLimit >= 0 else { throw AnySizeError(.invalidArgument, "--queue-limit \(queueLimit): use 0 or more") }
        guard bodyLimit >= 1 << 20 else {
            throw AnySizeError(.invalidArgument, "--body-limit \(bodyLimit >> 20) MB: use at least 1 MB")
        }
        if let dir = modelsDirectory {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw AnySizeError(.fileNotFound, "--models-dir \(dir): no such folder")
            }
        }
    }
}
