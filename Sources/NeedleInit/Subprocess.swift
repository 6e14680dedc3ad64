#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Runs a program (looked up on PATH) with the given standard input, capturing standard output and error
/// together. Small on purpose: needle-init runs only iptables tools, with small inputs and outputs.
public struct Subprocess {
    public struct Result: Sendable {
        public let status: Int32
        public let output: String
    }

    public struct LaunchError: Error, CustomStringConvertible {
        public let description: String
    }

    public static func run(_ arguments: [String], input: String = "") throws -> Result {
        guard let program = arguments.first else { throw LaunchError(description: "no program given") }
        var inputPipe: [Int32] = [0, 0]
        var outputPipe: [Int32] = [0, 0]
        guard pipe(&inputPipe) == 0, pipe(&outputPipe) == 0 else {
            throw LaunchError(description: "pipe failed: errno \(errno)")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inputPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outputPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, outputPipe[1], 2)
        for descriptor in inputPipe + outputPipe { posix_spawn_file_actions_addclose(&actions, descriptor) }

        var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, program, &actions, nil, &cArguments, environ)
        close(inputPipe[0])
        close(outputPipe[1])
        guard spawned == 0 else {
            close(inputPipe[1])
            close(outputPipe[0])
            throw LaunchError(description: "cannot run \(program): \(String(cString: strerror(spawned)))")
        }

        var bytes = Array(input.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeMutableBytes { write(inputPipe[1], $0.baseAddress, $0.count) }
            if written <= 0 { break }  // the program stopped reading; its status will say why
            offset += written
        }
        close(inputPipe[1])

        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(outputPipe[0], $0.baseAddress, $0.count) }
            if count > 0 {
                output += buffer[0..<count]
            } else if count == 0 || errno != EINTR {
                break
            }
        }
        close(outputPipe[0])

        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS, which Swift does not import as macros.
        let exitStatus: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return Result(status: exitStatus, output: String(decoding: output, as: UTF8.self))
    }
}
