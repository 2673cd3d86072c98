import SagaCore
import SagaProtocol
import SagaStore

/// One input of a batch: a decoded message (or an operator's request) for the engine to apply.
public struct EngineInput: SagaStoreInput, Hashable {
    /// What it asks.
    public enum Request: Sendable, Hashable {
        case start(StartSagaRequest)
        case cancel(CancelSagaRequest)
        case signal(SignalRequest)
        case reply(StepReplyMessage)
        /// An operator's order: abort or retry a saga.
        case operatorCommand(sagaID: String, event: SagaEvent)
    }

    public var request: Request
    /// The message's id, for the inbox: its CloudEvents source and id (unique together); `nil` for
    /// an operator's request.
    public var messageID: String?
    /// Where the message was read, for logs and the dead-letter record.
    public var origin: MessageOrigin?

    public init(request: Request, messageID: String?, origin: MessageOrigin? = nil) {
        self.request = request
        self.messageID = messageID
        self.origin = origin
    }

    /// The input for a decoded message.
    public init(_ message: InboundMessage, origin: MessageOrigin?) {
        let request: Request
        switch message.body {
        case .start(let start): request = .start(start)
        case .cancel(let cancel): request = .cancel(cancel)
        case .signal(let signal): request = .signal(signal)
        case .reply(let reply): request = .reply(reply)
        }
        self.init(
            request: request, messageID: message.attributes.source + " " + message.attributes.id, origin: origin)
    }

    public var sagaID: String? {
        switch request {
        case .start: return nil
        case .cancel(let cancel): return cancel.sagaID
        case .signal(let signal):
            if case .saga(let id) = signal.target { return id }
            return nil
        case .reply(let reply): return reply.sagaID
        case .operatorCommand(let id, _): return id
        }
    }

    public var startKey: StartKey? {
        switch request {
        case .start(let start):
            return StartKey(tenant: start.tenant, sagaType: start.sagaType, key: start.idempotencyKey)
        case .signal(let signal):
            if case .start(let tenant, let sagaType, let key) = signal.target {
                return StartKey(tenant: tenant, sagaType: sagaType, key: key)
            }
            return nil
        case .cancel, .reply, .operatorCommand:
            return nil
        }
    }
}

/// Where a message was read.
public struct MessageOrigin: Sendable, Hashable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public var offset: Int64

    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    public var description: String { "\(topic)[\(partition)]@\(offset)" }
}
