import Foundation
import Kafka
import TestSupport
import Testing

/// The `kafka-mock-broker` executable that scripts and end-to-end tests start: it serves clients,
/// writes its address, and obeys commands on its control FIFO.
@Suite("kafka-mock-broker process", .timeLimit(.minutes(2)))
struct MockBrokerProcessTests {
    static let executable = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug/kafka-mock-broker")

    @Test("starts, serves a producer, and takes fault-injection commands on its FIFO")
    func serveAndControl() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            KafkaTestEnvironment.unique("mock"))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let bootstrapFile = directory.appendingPathComponent("bootstrap")
        let control = directory.appendingPathComponent("control")
        let output = directory.appendingPathComponent("output")
        #expect(FileManager.default.createFile(atPath: output.path, contents: nil))

        let process = Process()
        process.executableURL = try #require(
            FileManager.default.isExecutableFile(atPath: Self.executable.path) ? Self.executable : nil,
            "build the kafka-mock-broker product first")
        process.arguments = [
            "--brokers", "1", "--topic", "orders:4", "--bootstrap-file", bootstrapFile.path, "--control", control.path,
        ]
        process.standardOutput = try FileHandle(forWritingTo: output)
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        try await eventually("the bootstrap file") { FileManager.default.fileExists(atPath: bootstrapFile.path) }
        let bootstrap = try String(contentsOf: bootstrapFile, encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
        #expect(bootstrap.hasPrefix("127.0.0.1:"))

        var configuration = KafkaProducerConfiguration(bootstrapServers: [bootstrap])
        configuration.messageTimeoutMilliseconds = 1_500
        configuration.client.properties["reconnect.backoff.max.ms"] = "300"
        let producer = try KafkaProducer(configuration: configuration, logger: KafkaTestEnvironment.logger)
        _ = try await producer.send(KafkaOutgoingMessage(topic: "orders", key: "o-1", value: "created"))

        func command(_ line: String) async throws {
            try await eventually("the control FIFO") { FileManager.default.fileExists(atPath: control.path) }
            let handle = try FileHandle(forWritingTo: control)
            handle.write(Data((line + "\n").utf8))
            try handle.close()
        }
        try await command("down 1")
        try await eventually("the broker to confirm 'down 1'") {
            (try? String(contentsOf: output, encoding: .utf8))?.contains("ok down 1") ?? false
        }
        await #expect(throws: KafkaError.self) {
            try await producer.send(KafkaOutgoingMessage(topic: "orders", key: "o-1", value: "lost"))
        }
        try await command("up 1")
        _ = try await withDeadline(.seconds(30), "a delivery after 'up 1'") {
            while true {
                do {
                    return try await producer.send(KafkaOutgoingMessage(topic: "orders", key: "o-1", value: "back"))
                } catch let error as KafkaError where error.isRetriable { continue }
            }
        }
        try await command("nonsense")
        try await eventually("an error for an unknown command") {
            (try? String(contentsOf: output, encoding: .utf8))?.contains("error: unknown command nonsense") ?? false
        }
        await producer.close()

        try await command("quit")
        try await eventually("the process to exit") { !process.isRunning }
        #expect(process.terminationStatus == 0)
    }
}
