import Foundation
import Kafka
import Logging
import SagaCore
import SagaProtocol
import SagaStore
import Synchronization
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// sagad and the example participants as processes, against the PostgreSQL the test command
/// started (a database per test) and librdkafka's mock cluster in the `kafka-mock-broker`
/// process; the test drives everything over Kafka and reads the events topic.
final class EndToEnd: Sendable {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// Where the executables are: `SAGA_BIN_PATH`, or the package's debug build.
    static let binaries = URL(
        fileURLWithPath: ProcessInfo.processInfo.environment["SAGA_BIN_PATH"]
            ?? root.appendingPathComponent(".build/debug").path)
    static let logger: Logger = {
        var logger = Logger(label: "end-to-end")
        logger.logLevel = ProcessInfo.processInfo.environment["E2E_TEST_LOG"] != nil ? .debug : .error
        return logger
    }()
    let directory: URL
    let bootstrap: String
    /// What this test's topics and consumer groups start with: empty on a broker of its own.
    let prefix: String
    let topics: SagaTopics
    let databaseURL: String
    let database: TestDatabase
    let producer: KafkaProducer
    let processes = Mutex<[String: Process]>([:])
    let events = Mutex<[SagaEventMessage]>([])
    let deadLetters = Mutex<[DeadLetterRecord]>([])

    private init(
        directory: URL, bootstrap: String, prefix: String, topics: SagaTopics, database: TestDatabase,
        producer: KafkaProducer
    ) {
        self.directory = directory
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.topics = topics
        self.database = database
        self.producer = producer
        let configuration = database.configuration
        let password = (configuration.password ?? "").addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        databaseURL =
            "postgres://\(configuration.username):\(password)@\(configuration.host):\(configuration.port)/"
            + "\(configuration.database)?sslmode=disable"
    }

    /// Runs `body` with a broker, a database, the definitions of `definitions` (YAML text by file
    /// name) and a reader of the events and dead-letter topics; stops every process afterwards.
    static func with(definitions: [String: String], _ body: (EndToEnd) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(
            at: directory.appendingPathComponent("definitions"), withIntermediateDirectories: true)
        for (name, text) in definitions {
            try text.write(
                to: directory.appendingPathComponent("definitions/\(name)"), atomically: true, encoding: .utf8)
        }
        // With KAFKA_BOOTSTRAP_SERVERS (the interop run against Tansu) the tests use that broker,
        // with topics and groups of their own; otherwise a kafka-mock-broker process of their own.
        let external = ProcessInfo.processInfo.environment["KAFKA_BOOTSTRAP_SERVERS"].flatMap { $0.isEmpty ? nil : $0 }
        let prefix = external == nil ? "" : "e2e-\(UUID().uuidString.prefix(8).lowercased())."
        var configured = SagaTopics()
        configured.requests = prefix + configured.requests
        configured.signals = prefix + configured.signals
        configured.replies = prefix + configured.replies
        configured.events = prefix + configured.events
        configured.deadLetter = prefix + configured.deadLetter
        configured.participantPrefix = prefix + configured.participantPrefix
        let topics = configured
        let specifications =
            (topics.inbound + [topics.events, topics.deadLetter]).map { ($0, 4) }
            + ["inventory", "payments", "shipping"].map { (topics.commands(for: $0), 2) }
        try await TestDatabase.with { database in
            var broker: Process?
            defer { broker.map(stop) }
            let bootstrap: String
            if let external {
                bootstrap = external
                let admin = try KafkaAdmin(
                    configuration: KafkaClientConfiguration(bootstrapServers: [external]), logger: logger)
                try await admin.createTopics(
                    specifications.map { KafkaTopicSpecification(name: $0.0, partitions: $0.1) })
                await admin.close()
            } else {
                broker = try launch(
                    "kafka-mock-broker",
                    arguments: [
                        "--brokers", "1", "--bootstrap-file", directory.appendingPathComponent("bootstrap").path,
                    ]
                        + specifications.flatMap { ["--topic", "\($0.0):\($0.1)"] },
                    environment: [:], log: directory.appendingPathComponent("broker.log"))
                bootstrap = try await withDeadline(.seconds(30), "the broker's bootstrap file") {
                    while true {
                        if let text = try? String(
                            contentsOf: directory.appendingPathComponent("bootstrap"), encoding: .utf8),
                            !text.isEmpty
                        {
                            return text.trimmingCharacters(in: .whitespacesAndNewlines)
                        }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
            }
            let producer = try KafkaProducer(
                configuration: KafkaProducerConfiguration(bootstrapServers: [bootstrap]), logger: logger)
            let environment = EndToEnd(
                directory: directory, bootstrap: bootstrap, prefix: prefix, topics: topics, database: database,
                producer: producer)
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        try await environment.read(topics.events, SagaEventMessage.self) { events in
                            environment.events.withLock { $0.append(contentsOf: events) }
                        }
                    }
                    group.addTask {
                        try await environment.read(topics.deadLetter, DeadLetterRecord.self) { records in
                            environment.deadLetters.withLock { $0.append(contentsOf: records) }
                        }
                    }
                    defer { group.cancelAll() }
                    try await body(environment)
                }
            } catch {
                environment.printLogs()
                environment.stopAll()
                await producer.close()
                throw error
            }
            environment.stopAll()
            await producer.close()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: processes

    static func launch(_ executable: String, arguments: [String] = [], environment: [String: String], log: URL)
        throws -> Process
    {
        let process = Process()
        process.executableURL = binaries.appendingPathComponent(executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        if !FileManager.default.fileExists(atPath: log.path) {
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    /// SIGTERM, then SIGKILL after 10 s.
    static func stop(_ process: Process) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// The environment every process of the saga's world gets.
    var commonEnvironment: [String: String] {
        [
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "POSTGRES_URL": databaseURL, "LOG_LEVEL": "info",
            "TOPIC_PREFIX": prefix,
        ]
    }

    /// Where the running sagad's log began in `sagad.log`, and the port its HTTP endpoints
    /// (metrics, health) listen on once its log said so. sagad binds a free port of the system's
    /// choosing (`HTTP_PORT=0`): a port picked here and bound later could be taken in between by
    /// anything else on the machine, the brokers of tests running alongside among them.
    private let http = Mutex<(logOffset: UInt64, port: Int?)>((0, nil))

    /// The port the running sagad listens on, read from its log; `nil` until it logged it.
    var httpPort: Int? {
        if let port = http.withLock({ $0.port }) { return port }
        let offset = http.withLock { $0.logOffset }
        guard let handle = try? FileHandle(forReadingFrom: directory.appendingPathComponent("sagad.log")) else {
            return nil
        }
        defer { try? handle.close() }
        try? handle.seek(toOffset: offset)
        let text = String(decoding: (try? handle.readToEnd()) ?? Data(), as: UTF8.self)
        // Hummingbird's "Server started and listening on HOST:PORT", with the port it bound.
        guard let line = text.split(separator: "\n").first(where: { $0.contains("Server started and listening on") }),
            let address = line.split(separator: "listening on ").last?.prefix(while: { $0 != "\"" }),
            let port = address.split(separator: ":").last.flatMap({ Int($0) })
        else { return nil }
        http.withLock { $0.port = port }
        return port
    }

    /// GET `path` on sagad's HTTP port: the status and the body; `nil` when nothing answers.
    func get(_ path: String) async -> (status: Int, body: String)? {
        guard let httpPort, let url = URL(string: "http://127.0.0.1:\(httpPort)\(path)"),
            let (data, response) = try? await URLSession.shared.data(from: url),
            let http = response as? HTTPURLResponse
        else { return nil }
        return (http.statusCode, String(decoding: data, as: UTF8.self))
    }

    /// Starts sagad (its log in `sagad.log`, appended across restarts).
    func startSagad(definitions: URL? = nil) throws {
        let log = directory.appendingPathComponent("sagad.log")
        let attributes = try? FileManager.default.attributesOfItem(atPath: log.path)
        let logged = (attributes?[.size] as? NSNumber)?.uint64Value ?? 0
        http.withLock { $0 = (logged, nil) }
        let process = try Self.launch(
            "sagad",
            environment: commonEnvironment.merging(
                [
                    "DEFINITIONS_DIRECTORY": (definitions ?? directory.appendingPathComponent("definitions")).path,
                    "HTTP_PORT": "0", "LOG_FORMAT": "json", "OUTBOX_POLL_INTERVAL_MS": "200",
                    "TIMERS_POLL_INTERVAL_MS": "100", "KAFKA_GROUP": prefix + "sagad",
                    "TOPICS_REQUESTS": topics.requests, "TOPICS_SIGNALS": topics.signals,
                    "TOPICS_REPLIES": topics.replies, "TOPICS_EVENTS": topics.events,
                    "TOPICS_DEAD_LETTER": topics.deadLetter, "TOPICS_PARTICIPANT_PREFIX": topics.participantPrefix,
                ], uniquingKeysWith: { _, new in new }),
            log: directory.appendingPathComponent("sagad.log"))
        processes.withLock { $0["sagad"] = process }
    }

    /// Starts the example participants with `switches` (FAIL_COMMANDS, SLOW_MS, … ; see
    /// examples/participants).
    func startParticipants(_ switches: [String: [String: String]] = [:]) throws {
        for name in ["inventory", "payments", "shipping"] {
            let process = try Self.launch(
                "\(name)-participant",
                environment: commonEnvironment.merging(switches[name] ?? [:], uniquingKeysWith: { _, new in new }),
                log: directory.appendingPathComponent("\(name).log"))
            processes.withLock { $0[name] = process }
        }
    }

    /// Kills sagad as a crash would: SIGKILL, no shutdown.
    func killSagad() {
        guard let process = processes.withLock({ $0.removeValue(forKey: "sagad") }) else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Waits until sagad exits by itself, and returns its exit status.
    func sagadExit(timeout: Duration = .seconds(60)) async throws -> Int32 {
        guard let process = processes.withLock({ $0["sagad"] }) else { return -1 }
        try await withDeadline(timeout, "sagad to exit") {
            while process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        }
        processes.withLock { _ = $0.removeValue(forKey: "sagad") }
        return process.terminationStatus
    }

    /// Stops sagad with SIGTERM and returns its exit status.
    func stopSagad() -> Int32 {
        guard let process = processes.withLock({ $0.removeValue(forKey: "sagad") }) else { return -1 }
        Self.stop(process)
        return process.terminationStatus
    }

    func stopAll() {
        for process in processes.withLock({ $0.values }) { Self.stop(process) }
    }

    func printLogs() {
        for name in ["sagad", "inventory", "payments", "shipping", "broker"] {
            let text = (try? String(contentsOf: directory.appendingPathComponent("\(name).log"), encoding: .utf8)) ?? ""
            print("---- \(name).log (last lines)\n" + text.split(separator: "\n").suffix(30).joined(separator: "\n"))
        }
    }

    // MARK: Kafka

    func read<Body: SagaMessageBody>(_ topic: String, _: Body.Type, append: @Sendable ([Body]) -> Void)
        async throws
    {
        var configuration = KafkaConsumerConfiguration(
            bootstrapServers: [bootstrap], groupID: "e2e-\(UUID().uuidString)")
        configuration.sessionTimeoutMilliseconds = 6_000
        configuration.heartbeatIntervalMilliseconds = 500
        let consumer = try KafkaConsumer(configuration: configuration, logger: Self.logger)
        try consumer.subscribe(to: [topic])
        do {
            for await batch in consumer.batches() {
                let bodies = try batch.map { message in
                    try SagaWire.decode(Body.self, headers: message.headersByName, value: message.value).1
                }
                append(bodies)
            }
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
    }

    func send<Body: SagaMessageBody>(_ body: Body, topic: String, key: String) async throws {
        let wire = SagaWire.encode(
            body, id: UUID().uuidString, source: "/e2e-tests", time: .init(date: Date()), key: key)
        try await sendRaw(topic: topic, key: key, headers: wire.headers, value: wire.value)
    }

    func sendRaw(topic: String, key: String, headers: [String: String], value: String) async throws {
        _ = try await producer.send(
            KafkaOutgoingMessage(
                topic: topic, key: Array(key.utf8), value: Array(value.utf8),
                headers: KafkaHeader.headers(headers)))
    }

    func start(_ key: String, input: JSONValue) async throws {
        try await send(
            StartSagaRequest(sagaType: "order-fulfillment", input: input, idempotencyKey: key),
            topic: topics.requests,
            key: key)
    }

    func approve(_ key: String, approved: Bool = true) async throws {
        try await send(
            SignalRequest(
                target: .start(tenant: "", sagaType: "order-fulfillment", idempotencyKey: key),
                signalID: "approval-\(key)", name: "approval", payload: ["approved": .bool(approved)]),
            topic: topics.signals, key: key)
    }

    /// The id of the saga started with `key`, once it started.
    func sagaID(_ key: String, timeout: Duration = .seconds(90)) async throws -> String {
        try await event("saga.started", of: key, timeout: timeout).sagaID ?? ""
    }

    /// Waits for event `name` of the saga started with `key` (or of saga id `key`).
    @discardableResult
    func event(_ name: String, of key: String, step: String? = nil, timeout: Duration = .seconds(90)) async throws
        -> SagaEventMessage
    {
        try await withDeadline(timeout, "event \(name) of \(key)") {
            while true {
                let found = self.events.withLock { events -> SagaEventMessage? in
                    let ids = Set(events.filter { $0.idempotencyKey == key }.compactMap(\.sagaID)).union([key])
                    return events.first {
                        $0.event == name && (ids.contains($0.sagaID ?? "") || $0.idempotencyKey == key)
                            && (step == nil || $0.step == step)
                    }
                }
                if let found { return found }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// The events of saga `id`, in the order they were read.
    func events(of id: String) -> [SagaEventMessage] {
        events.withLock { $0.filter { $0.sagaID == id } }
    }

    /// The steps of saga `id` that started or were compensated, in order: `reserve-inventory`,
    /// `-charge-payment` for a compensation. Another attempt of the same step (a retry, when a busy
    /// machine made an attempt time out) is not listed again.
    func timeline(of id: String) -> [String] {
        var steps: [String] = []
        for event in events(of: id) {
            let entry: String?
            switch event.event {
            case "step.started": entry = event.step
            case "step.compensation-started": entry = event.step.map { "-" + $0 }
            default: entry = nil
            }
            if let entry, entry != steps.last { steps.append(entry) }
        }
        return steps
    }
}
