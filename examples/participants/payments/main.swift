import ExampleParticipants
import PostgresNIO
import SagaCore
import SagaParticipant
import SagaProtocol

// The payments service: `payments.charge` records a charge of the order's amount,
// `payments.refund` marks it refunded.
let participant = ExampleParticipant(name: "payments")
try await participant.run(
    setup: """
        CREATE TABLE IF NOT EXISTS payments_charges (
            saga_id text PRIMARY KEY, amount bigint NOT NULL, refunded boolean NOT NULL DEFAULT false)
        """
) { context in
    let command = context.command
    let amount = Int64(command.payload["input"]?["amount"]?.numberValue ?? 0)
    switch command.commandType {
    case "payments.charge":
        try await context.connection.query(
            "INSERT INTO payments_charges (saga_id, amount) VALUES (\(command.sagaID), \(amount))",
            logger: context.logger)
        return .success(result: ["chargeId": .string("c-\(command.sagaID)"), "amount": .integer(amount)])
    case "payments.refund":
        try await context.connection.query(
            "UPDATE payments_charges SET refunded = true WHERE saga_id = \(command.sagaID)", logger: context.logger)
        return .success(result: ["refunded": true])
    default:
        return .failure(StepError(code: "UNKNOWN_COMMAND", message: command.commandType, retryable: false))
    }
}
