import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleContract
import NeedleInjection
import NeedleWebhook

@main
struct NeedleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "needle",
        abstract: "The Needle service mesh's operator tool.",
        subcommands: [Review.self, Version.self]
    )
}

struct Review: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one AdmissionReview through the injector offline and print the response.",
        discussion: """
            Reads an AdmissionReview (JSON) from FILE, or standard input with '-', and prints the \
            AdmissionReview response the webhook would send. Without --namespaces, namespaces have no \
            annotations and only the pod's own annotations count.
            """
    )

    @Argument(help: "AdmissionReview JSON file, or - for standard input.")
    var file: String = "-"

    @Option(help: "Namespace list as 'kubectl get ns -o yaml' (or -o json) prints it.")
    var namespaces: String?

    @Option(help: "Injector configuration file (YAML or JSON) overriding the embedded defaults.")
    var config: String?

    @Flag(help: "Print the decision, reasons, warnings and patch in readable form instead of JSON.")
    var explain = false

    func run() async throws {
        let configuration: InjectorConfiguration
        let directory: any NamespaceDirectory
        do {
            configuration = try InjectorConfiguration.load(path: config)
            directory = try namespaces.map { try NamespaceFile(path: $0) } ?? NoNamespaces()
        } catch {
            printError("needle review: \(error)")
            throw ExitCode(64)
        }
        let body: Data
        do {
            body = try readInput(file)
        } catch {
            printError("needle review: cannot read \(file): \(error)")
            throw ExitCode(66)
        }
        let reviewer = AdmissionReviewer(injector: Injector(configuration: configuration), namespaces: directory)
        do {
            let (response, summary) = try await reviewer.review(body)
            if explain {
                print(ReviewExplanation(summary: summary).text, terminator: "")
            } else {
                print(String(decoding: response, as: UTF8.self))
            }
        } catch {
            printError("needle review: \(error) (the webhook would answer HTTP \(error.httpStatus))")
            throw ExitCode(65)
        }
    }

    func readInput(_ path: String) throws -> Data {
        if path == "-" {
            var bytes: [UInt8] = []
            while let line = readLine(strippingNewline: false) { bytes += Array(line.utf8) }
            return Data(bytes)
        }
        return try Data(contentsOf: URL(filePath: path))
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() { print("needle \(Mesh.version)") }
}

func printError(_ message: String) {
    var standardError = StandardError()
    print(message, to: &standardError)
}
