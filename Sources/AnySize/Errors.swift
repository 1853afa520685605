/// Errors a user can act on: each names the file, tensor or value at fault and what to do.
public struct AnySizeError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable {
        case invalidArgument, fileNotFound, notAModel, unsupportedFormat, corruptFile
        case missingComponent, missingTensor, shapeMismatch, unsupportedConfig, io, outOfMemory
    }

    public let kind: Kind
    /// One line: what is wrong, with the path or value, and what to do.
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
