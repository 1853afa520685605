import AnySize
import AnySizeServer
import ArgumentParser
import Foundation

/// `anysize serve`: the AUTOMATIC1111-compatible HTTP API (docs/SERVER.md).
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the AUTOMATIC1111 web API (/sdapi/v1/...) for A1111 clients.")

    @Option(help: "The model loaded at start: a diffusers folder or a .safetensors file.") var model: String
    @Option(help: "Address to listen on (0.0.0.0 for every interface).") var host: String = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one).") var port: Int = 7860
    @Option(name: .customLong("models-dir"), help: "Folder of more models sd_model_checkpoint can switch to.") var modelsDir: String?
    @Option(help: "Folder of the server's state and saved images.") var state: String = "anysize-state"
    @Option(name: .customLong("api-auth"), help: "HTTP Basic credentials USER:PASS (several: comma-separated).") var apiAuth: String?
    @Option(name: .customLong("queue-limit"), help: "Most requests waiting behind the running one; more answer 429.") var queueLimit: Int = 16
    @Option(name: .customLong("body-limit"), help: "Largest request body in MB.") var bodyLimit: Int = 32
    @Option(help: "fp32 (default, equal to diffusers) or bf16: every loaded model's UNet in bfloat16 (about half the weight memory).") var precision: String = "fp32"

    func run() throws {
        var configuration = ServerConfiguration(modelPath: model)
        configuration.host = host
        configuration.port = port
        configuration.modelsDirectory = modelsDir
        configuration.stateDirectory = state
        configuration.credentials = try apiAuth.map { try ServerConfiguration.parseCredentials($0) } ?? []
        configuration.queueLimit = queueLimit
        configuration.bodyLimit = bodyLimit << 20
        configuration.precision = try Precision.parse(precision)
        let server = try AnySizeServer(configuration: configuration)
        let host = self.host, modelPath = model
        let precisionNote = configuration.precision == .fp32 ? "" : ", \(configuration.precision.rawValue) UNet: \(configuration.precision.kernelDescription)"
        try server.runUntilTerminated { port in
            print("anysize serve: http://\(host):\(port) (model \(modelPath)\(precisionNote)); Ctrl-C stops")
            fflush(stdout)
        }
    }
}
