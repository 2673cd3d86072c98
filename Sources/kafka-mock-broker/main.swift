import Dispatch
import Foundation
import Kafka
import Logging

// A Kafka-protocol broker for development and tests: librdkafka's mock cluster in a process of
// its own. It binds random loopback ports, writes its bootstrap address to a file, and takes
// fault-injection commands, one per line, from a control FIFO:
//
//   topic NAME PARTITIONS [REPLICATION]   create a topic
//   down BROKER | up BROKER               take a broker down, bring it back
//   rtt BROKER MILLISECONDS               add latency to a broker's round trips
//   errors API_KEY CODE [CODE…]           fail the next requests of a Kafka API with these codes
//   clear API_KEY                         drop the errors still queued for an API
//   leader TOPIC PARTITION BROKER         move a partition's leadership
//   coordinator GROUP BROKER              move a consumer group's coordinator
//   quit                                  stop
//
// Each command's outcome ("ok …" or "error: …") is written to standard output.

struct Options {
    var brokers = 3
    var topics: [(String, Int)] = []
    var bootstrapFile: String?
    var control: String?

    static let usage = """
        usage: kafka-mock-broker [--brokers N] [--topic NAME:PARTITIONS]… [--bootstrap-file PATH] [--control FIFO]
        """

    init(arguments: [String]) throws {
        var rest = arguments[...]
        func value(_ flag: String) throws -> String {
            guard let next = rest.popFirst() else { throw UsageError("\(flag) needs a value") }
            return next
        }
        while let flag = rest.popFirst() {
            switch flag {
            case "--brokers":
                guard let count = Int(try value(flag)), count > 0 else { throw UsageError("--brokers needs a count") }
                brokers = count
            case "--topic":
                let spec = try value(flag).split(separator: ":")
                guard spec.count == 2, let partitions = Int(spec[1]), partitions > 0 else {
                    throw UsageError("--topic needs NAME:PARTITIONS")
                }
                topics.append((String(spec[0]), partitions))
            case "--bootstrap-file": bootstrapFile = try value(flag)
            case "--control": control = try value(flag)
            case "--help", "-h":
                print(Self.usage)
                exit(0)
            default: throw UsageError("unknown option \(flag)")
            }
        }
    }
}

struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Carries out one control command.
func execute(_ line: String, on cluster: KafkaMockCluster) -> String {
    let words = line.split(separator: " ").map(String.init)
    guard let command = words.first else { return "error: empty command" }
    let arguments = Array(words.dropFirst())
    func int32(_ index: Int) -> Int32? { arguments.indices.contains(index) ? Int32(arguments[index]) : nil }
    switch command {
    case "topic":
        guard arguments.count >= 2, let partitions = Int(arguments[1]) else { return "error: topic NAME PARTITIONS" }
        do {
            try cluster.createTopic(
                arguments[0], partitions: partitions, replicationFactor: Int(arguments.dropFirst(2).first ?? "1") ?? 1)
            return "ok topic \(arguments[0])"
        } catch {
            return "error: \(error)"
        }
    case "down", "up":
        guard let broker = int32(0), cluster.brokerIDs.contains(broker) else { return "error: \(command) BROKER" }
        if command == "down" { cluster.setBrokerDown(broker) } else { cluster.setBrokerUp(broker) }
        return "ok \(command) \(broker)"
    case "rtt":
        guard let broker = int32(0), let milliseconds = int32(1) else { return "error: rtt BROKER MILLISECONDS" }
        cluster.setRoundTripTime(broker: broker, milliseconds: Int(milliseconds))
        return "ok rtt \(broker) \(milliseconds)"
    case "errors":
        guard let key = int32(0), arguments.count >= 2 else { return "error: errors API_KEY CODE…" }
        let codes = arguments.dropFirst().compactMap { Int32($0) }
        guard codes.count == arguments.count - 1 else { return "error: error codes are numbers" }
        cluster.pushRequestErrors(apiKey: Int16(key), errors: codes)
        return "ok errors \(key) \(codes.count)"
    case "clear":
        guard let key = int32(0) else { return "error: clear API_KEY" }
        cluster.clearRequestErrors(apiKey: Int16(key))
        return "ok clear \(key)"
    case "leader":
        guard arguments.count == 3, let partition = int32(1), let broker = int32(2) else {
            return "error: leader TOPIC PARTITION BROKER"
        }
        cluster.setPartitionLeader(topic: arguments[0], partition: partition, broker: broker)
        return "ok leader \(arguments[0]) \(partition) \(broker)"
    case "coordinator":
        guard arguments.count == 2, let broker = int32(1) else { return "error: coordinator GROUP BROKER" }
        cluster.setGroupCoordinator(group: arguments[0], broker: broker)
        return "ok coordinator \(arguments[0]) \(broker)"
    case "quit":
        return "ok quit"
    default:
        return "error: unknown command \(command)"
    }
}

func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .warning
    return handler
}
let logger = Logger(label: "kafka-mock-broker")

let options: Options
do {
    options = try Options(arguments: Array(CommandLine.arguments.dropFirst()))
} catch {
    FileHandle.standardError.write(Data("kafka-mock-broker: \(error)\n\(Options.usage)\n".utf8))
    exit(64)
}

let cluster: KafkaMockCluster
do {
    cluster = try KafkaMockCluster(brokers: options.brokers, logger: logger)
    for (name, partitions) in options.topics { try cluster.createTopic(name, partitions: partitions) }
} catch {
    FileHandle.standardError.write(Data("kafka-mock-broker: \(error)\n".utf8))
    exit(1)
}

if let path = options.bootstrapFile {
    // Written whole, then renamed into place: a reader never sees half an address.
    let temporary = path + ".tmp"
    do {
        try Data((cluster.bootstrapServers + "\n").utf8).write(to: URL(fileURLWithPath: temporary))
        _ = rename(temporary, path)
    } catch {
        FileHandle.standardError.write(Data("kafka-mock-broker: cannot write \(path): \(error)\n".utf8))
        exit(1)
    }
}
say("bootstrap \(cluster.bootstrapServers) (librdkafka \(KafkaLibrary.version), \(options.brokers) brokers)")

if let control = options.control {
    unlink(control)
    guard mkfifo(control, 0o600) == 0 else {
        FileHandle.standardError.write(Data("kafka-mock-broker: cannot create the FIFO \(control)\n".utf8))
        exit(1)
    }
    let reader = Thread {
        while true {
            // Opening blocks until a writer comes; end of file means the writer went away.
            guard let file = fopen(control, "r") else { break }
            var line: UnsafeMutablePointer<CChar>?
            var capacity = 0
            while getline(&line, &capacity, file) > 0, let bytes = line {
                let text = String(cString: bytes).trimmingCharacters(in: .whitespacesAndNewlines)
                guard !text.isEmpty else { continue }
                say(execute(text, on: cluster))
                if text == "quit" {
                    unlink(control)
                    exit(0)
                }
            }
            free(line)
            fclose(file)
        }
    }
    reader.start()
}

let signalSources = [SIGTERM, SIGINT].map { signal in
    Foundation.signal(signal, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: signal, queue: .main)
    source.setEventHandler {
        if let control = options.control { unlink(control) }
        if let path = options.bootstrapFile { unlink(path) }
        exit(0)
    }
    source.resume()
    return source
}
dispatchMain()
