import AnySize
import ArgumentParser

struct AnySizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "anysize",
        abstract: "Stable Diffusion 1.x/2.x on the CPU at any canvas size.",
        version: AnySizeVersion.string)
}

AnySizeCommand.main()
